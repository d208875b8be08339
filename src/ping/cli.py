"""The command line: ``python -m ping [COMMAND]``, also installed as ``pingctl``.

Each subcommand lives in its own module; this file only dispatches. With no
command, the service serves, which is what the image's CMD relies on.
"""

import argparse
import sys

from ping import __version__


def _serve(args: argparse.Namespace) -> int:
    from ping.serve import serve  # imported on use: other commands need no web stack

    return serve()


def parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    top = argparse.ArgumentParser(prog="pingctl", description="Ping: serve scikit-learn models.")
    top.add_argument("--version", action="version", version=f"ping {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the model (the default; configured by PING_*)")
    serve.set_defaults(run=_serve)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one command; ``serve`` when none is given."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    run = getattr(args, "run", _serve)
    return int(run(args))
