"""The command line: ``python -m ping [COMMAND]``, also installed as ``pingctl``.

Each subcommand lives in its own module; this file only dispatches. With no
command, the service serves, which is what the image's CMD relies on.
"""

import argparse
import sys
from pathlib import Path

from ping import __version__, fetch, selftest  # both standard library only


def _serve(args: argparse.Namespace) -> int:
    from ping import startup

    startup.prepare()  # before the heavy imports: see ping.startup
    try:
        from ping.serve import serve  # imported on use: other commands need no web stack

        return serve()
    finally:
        startup.resume()  # the lifespan resumes it once the model is loaded; else here


def _package(args: argparse.Namespace) -> int:
    from ping.package import run

    return run(args)


def _check(args: argparse.Namespace) -> int:
    from ping.check import run

    return run(args)


def parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    top = argparse.ArgumentParser(prog="pingctl", description="Ping: serve scikit-learn models.")
    top.add_argument("--version", action="version", version=f"ping {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the model (the default; configured by PING_*)")
    serve.set_defaults(run=_serve)

    package = commands.add_parser(
        "package",
        help="package a fitted scikit-learn estimator as a servable artifact directory",
        description="Package a fitted estimator saved with skops (.skops) or joblib (.joblib, "
        ".pkl): infer its inputs and outputs, record a sample answer, write DIR in the skops "
        "format and self-check it. Loading a joblib/pickle file runs code from it: package "
        "only files you made.",
    )
    package.add_argument(
        "model_file", type=Path, metavar="MODEL_FILE", help="the fitted estimator's file"
    )
    package.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        metavar="DIR",
        help="artifact directory to write",
    )
    package.add_argument("--name", help="model name (default: MODEL_FILE's stem)")
    package.add_argument("--version", default="1", help="model version (default: %(default)s)")
    package.add_argument(
        "--sample",
        type=Path,
        metavar="FILE",
        help="a few valid rows: JSON (a /predict body or a list of rows) or CSV with a header "
        "(default: a row made from what the fitted transformers learnt)",
    )
    package.add_argument(
        "--format",
        choices=("skops", "joblib"),
        default="skops",
        help="model file format (default: %(default)s; joblib needs PING_ALLOW_PICKLE=true)",
    )
    package.set_defaults(run=_package)

    check = commands.add_parser(
        "check", help="load an artifact as the server would, self-check it and summarise it"
    )
    check.add_argument("model_dir", type=Path, metavar="DIR", help="the artifact directory")
    check.set_defaults(run=_check)
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
