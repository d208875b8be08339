"""The command line: ``python -m ping [COMMAND]``, also installed as ``pingctl``.

Each subcommand lives in its own module; this file only dispatches. With no
command, the service serves, which is what the image's CMD relies on.
"""

import argparse
import sys

from ping import __version__, fetch, selftest  # both standard library only


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
    fetch_ = commands.add_parser("fetch", help="fetch a model artifact over https, verified")
    fetch.add_arguments(fetch_)
    fetch_.set_defaults(run=fetch.run)
    selftest_ = commands.add_parser("selftest", help="check a running Ping against its sample")
    selftest.add_arguments(selftest_)
    selftest_.set_defaults(run=selftest.run)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one command; ``serve`` when none is given."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    run = getattr(args, "run", _serve)
    return int(run(args))
