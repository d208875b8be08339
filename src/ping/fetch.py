"""``python -m ping fetch URI DIR``: download an artifact directory over HTTPS, verified.

The chart's ``model.source: uri`` runs this as an init container in Ping's own image, the
way KServe runs its storage initializer: it fetches ``metadata.json``, then the model file
that metadata names, checks the model's sha256 against it, and only then moves both into
DIR (the model first, ``metadata.json`` last), so Ping never sees half an artifact.

Standard library only, and every step bounded: a connect timeout, a per-read timeout, an
overall deadline, a size cap per file, and at most a few HTTPS-only redirects. Plain http is
refused except to a loopback address or with ``--allow-http``: a checksum served over the
same insecure channel as the file proves nothing against whoever is on the path.

Every failure exits 1 with one line on stderr; the kubelet retries the init container.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import ipaddress
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

METADATA_FILE = "metadata.json"
# The model file, when metadata.json does not name it: the packager's skops, then joblib.
MODEL_FILES = ("model.skops", "model.joblib")
METADATA_MAX_BYTES = 1 << 20
MAX_REDIRECTS = 5
CHUNK = 1 << 16
STAGING_PREFIX = ".fetch-"
EXIT_FAILED = 1


class FetchError(Exception):
    """One file could not be fetched or verified; the message is one line."""


class NotFound(FetchError):
    """The server answered 404 for this file."""


@dataclass(frozen=True)
class Limits:
    """What one fetch may cost."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 600.0
    max_bytes: int = 1 << 30
    allow_http: bool = False
    ca_file: str | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, limits: Limits) -> None:
    """Refuse what this command must never fetch from."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (limits.allow_http or _is_loopback(parts.hostname or "")):
        return
    if parts.scheme == "http":
        raise FetchError(
            f"{url}: plain http is refused (the checksum would travel with the file); "
            "use https, or --allow-http on a network you trust"
        )
    raise FetchError(f"{url}: unsupported scheme {parts.scheme!r}; expected https://")


class Fetcher:
    """Fetches files below one base URL within one overall deadline."""

    def __init__(self, base: str, limits: Limits) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.limits = limits
        self.expires = time.monotonic() + limits.deadline
        check_url(self.base, limits)
        try:
            self.context = ssl.create_default_context(cafile=limits.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise FetchError(f"--ca-file {limits.ca_file}: {_describe(exc, limits)}") from None

    def _remaining(self, url: str) -> float:
        left = self.expires - time.monotonic()
        if left <= 0:
            raise FetchError(f"{url}: gave up after the {self.limits.deadline:g}s deadline")
        return left

    def _open(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """GET url, following a bounded number of redirects that stay allowed."""
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.limits)
            parts = urlsplit(url)
            timeout = min(self.limits.connect_timeout, self._remaining(url))
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    parts.netloc, timeout=timeout, context=self.context
                )
            else:
                conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            try:
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(min(self.limits.read_timeout, self._remaining(url)))
                conn.request("GET", path, headers={"User-Agent": "ping-fetch", "Accept": "*/*"})
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise FetchError(f"{url}: {_describe(exc, self.limits)}") from None
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                conn.close()
                if not location:
                    raise FetchError(f"{url}: redirect {response.status} without a Location")
                url = urljoin(url, location)
                continue
            if response.status == 404:
                conn.close()
                raise NotFound(f"{url}: 404 Not Found")
            if response.status != 200:
                conn.close()
                raise FetchError(f"{url}: HTTP {response.status} {response.reason}")
            return conn, response
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def download(self, name: str, out: IO[bytes], cap: int) -> str:
        """Stream one file into out; return its sha256. Checks size and completeness."""
        url = urljoin(self.base, quote(name))
        conn, response = self._open(url)
        try:
            declared = response.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise FetchError(f"{url}: {declared} bytes is over the {cap}-byte cap")
            digest = hashlib.sha256()
            received = 0
            while True:
                self._remaining(url)
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise FetchError(f"{url}: {_describe(exc, self.limits)}") from None
                if not chunk:
                    break
                received += len(chunk)
                if received > cap:
                    raise FetchError(f"{url}: body is over the {cap}-byte cap")
                digest.update(chunk)
                out.write(chunk)
            if declared is not None and declared.isdigit() and received != int(declared):
                raise FetchError(f"{url}: truncated, got {received} of {declared} bytes")
            return digest.hexdigest()
        finally:
            conn.close()


def _describe(exc: BaseException, limits: Limits) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out (connect {limits.connect_timeout:g}s, read {limits.read_timeout:g}s)"
    if isinstance(exc, http.client.IncompleteRead):
        return f"truncated: the connection closed with {exc.expected} bytes still to come"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _model_file(metadata: dict[str, Any], url: str) -> tuple[str, ...]:
    """The model file(s) to try: the one metadata.json names, else the known names."""
    named = metadata.get("model_file")
    if named is None:
        return MODEL_FILES
    if not isinstance(named, str) or PurePosixPath(named).name != named or named in ("", "."):
        raise FetchError(f"{url}: model_file {named!r} is not a plain file name")
    return (named,)


def fetch(uri: str, dest: Path, limits: Limits) -> Path:
    """Fetch the artifact at uri into dest; return the model file's path."""
    fetcher = Fetcher(uri, limits)
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f"{STAGING_PREFIX}*"):  # left by a fetch that was killed
        shutil.rmtree(stale, ignore_errors=True)
    meta_url = urljoin(fetcher.base, METADATA_FILE)
    # Staged inside dest, so the final renames never cross a filesystem.
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=dest) as staging_dir:
        staging = Path(staging_dir)
        with (staging / METADATA_FILE).open("wb") as out:
            fetcher.download(METADATA_FILE, out, METADATA_MAX_BYTES)
        try:
            metadata = json.loads((staging / METADATA_FILE).read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FetchError(f"{meta_url}: not valid JSON: {exc}") from None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("sha256"), str):
            raise FetchError(f"{meta_url}: has no sha256 of the model file")
        expected = metadata["sha256"].lower()
        candidates = _model_file(metadata, meta_url)
        for name in candidates:
            try:
                with (staging / name).open("wb") as out:
                    actual = fetcher.download(name, out, limits.max_bytes)
                break
            except NotFound:
                (staging / name).unlink()
                if name == candidates[-1]:
                    raise
        if actual != expected:
            raise FetchError(
                f"{urljoin(fetcher.base, name)}: sha256 {actual[:16]}… does not match "
                f"{METADATA_FILE}'s {expected[:16]}…; refusing the artifact"
            )
        for staged in (name, METADATA_FILE):  # metadata last: it is what readers look for
            os.chmod(staging / staged, 0o444)
            os.replace(staging / staged, dest / staged)
    return dest / name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``fetch`` subcommand's arguments (registered by ping.cli)."""
    defaults = Limits()
    parser.add_argument("uri", help="https:// URL of the artifact directory")
    parser.add_argument("dir", type=Path, help="directory to write metadata.json and the model to")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=defaults.max_bytes,
        help="largest model file accepted (default: %(default)s)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=defaults.connect_timeout,
        help="seconds to connect (default: %(default)s)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=defaults.read_timeout,
        help="seconds one read may wait for data (default: %(default)s)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=defaults.deadline,
        help="seconds the whole fetch may take (default: %(default)s)",
    )
    parser.add_argument("--ca-file", help="PEM bundle of CAs to trust instead of the system's")
    parser.add_argument(
        "--allow-http",
        action="store_true",
        help="allow plain http to hosts other than loopback (the checksum then proves nothing)",
    )


def run(args: argparse.Namespace) -> int:
    """Fetch, print one line, and return the exit code."""
    limits = Limits(
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        deadline=args.deadline,
        max_bytes=args.max_bytes,
        allow_http=args.allow_http,
        ca_file=args.ca_file,
    )
    try:
        model = fetch(args.uri, args.dir, limits)
    except FetchError as exc:
        print(f"ping fetch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # the destination directory
        print(f"ping fetch: {exc.filename or args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"ping fetch: {model.name} and {METADATA_FILE} verified into {args.dir}")
    return 0
