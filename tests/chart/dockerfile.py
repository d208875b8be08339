"""What the image runs, read from the Dockerfile's final stage: ENTRYPOINT, CMD, ENV, USER, EXPOSE.

The chart must agree with the image it deploys, and the Dockerfile is the image's source of truth.
If no Dockerfile exists (a chart-only checkout), the documented image contract stands in for it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


@dataclass
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = "/"
    exposed: list[int] = field(default_factory=list)
    source: str = ""


# The image contract as documented (issue 3), for when there is no Dockerfile to read.
DOCUMENTED = ImageConfig(
    cmd=["python", "-m", "ping"],
    env={"PING_HOST": "0.0.0.0", "PING_PORT": "9696", "PING_MODEL_DIR": "/app/models/iris"},
    user="10001:10001",
    workdir="/app",
    exposed=[9696],
    source="documented contract (no Dockerfile)",
)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def _command(arguments: str) -> list[str]:
    if arguments.startswith("["):
        return [str(part) for part in json.loads(arguments)]
    return ["/bin/sh", "-c", arguments]  # shell form


def parse(text: str, source: str = "Dockerfile") -> ImageConfig:
    """The final stage's runtime configuration (a new FROM resets it, as docker build does)."""
    config = ImageConfig(source=source)
    args: dict[str, str] = {}  # the stage's ARG defaults, for ${NAME:-default} in ENV
    for instruction, arguments in _instructions(text):
        if instruction == "FROM":
            config = ImageConfig(source=source)
            args = {}
        elif instruction == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = default.strip('"')
        elif instruction == "ENTRYPOINT":
            config.entrypoint = _command(arguments)
            config.cmd = []  # docker resets CMD when ENTRYPOINT is set in the same stage
        elif instruction == "CMD":
            config.cmd = _command(arguments)
        elif instruction == "ENV":
            parts = shlex.split(arguments)
            if parts and "=" not in parts[0]:  # legacy `ENV KEY value`
                config.env[parts[0]] = " ".join(parts[1:])
            else:
                for part in parts:
                    key, _, value = part.partition("=")
                    config.env[key] = _expand(value, args)
        elif instruction == "USER":
            config.user = arguments
        elif instruction == "WORKDIR":
            config.workdir = arguments
        elif instruction == "EXPOSE":
            config.exposed += [int(port.split("/")[0]) for port in arguments.split()]
    return config


def _expand(value: str, args: dict[str, str]) -> str:
    """``${NAME}`` and ``${NAME:-default}`` as docker build expands them with ARG defaults."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return args.get(name) or default if match.group(2) else args.get(name, "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, value)


def image_config(path: Path = DOCKERFILE) -> ImageConfig:
    if path.is_file():
        return parse(path.read_text(), source=str(path))
    return DOCUMENTED


def container_argv(
    image: ImageConfig, command: list[str] | None, args: list[str] | None
) -> list[str]:
    """The process a container runs, by Kubernetes' rules for command/args over ENTRYPOINT/CMD."""
    if command:
        return [*command, *(args or [])]
    if args:
        return [*image.entrypoint, *args]
    return [*image.entrypoint, *image.cmd]
