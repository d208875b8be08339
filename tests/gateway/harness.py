"""Run the chart's own HAProxy config with the real haproxy binary, on 127.0.0.1.

The config is taken out of the rendered ConfigMap and changed only where a pod differs from this
machine, each change asserted to hit: the pod's mount points become directories of a temp dir,
the listen ports become free local ports, the cluster DNS becomes a stub DNS server, and the
rendered model Service names keep their names but get the local Pings' port. The stub answers
those names with loopback addresses (127.0.0.2, 127.0.0.3, ...), one per Ping, just as cluster
DNS answers a headless Service with one address per ready pod.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import yaml
from tests.chart.helm import helm_template
from tests.conftest import REPO

# Where the gateway pod mounts things (templates/gateway/deployment.yaml), and the local stand-in.
MOUNTS = {
    "/usr/local/etc/haproxy": "conf",
    "/etc/ping-gateway/keys": "keys",
    "/etc/ping-gateway/tls": "tls",
    "/var/run/haproxy": "run",
}
CONFIGMAP = "templates/gateway/configmap.yaml"
# A model Service in the rendered config: `server-template pod <n> <fqdn>:<port>`.
_SERVER_TEMPLATE = re.compile(r"server-template pod \d+ (\S+):(\d+)$", re.MULTILINE)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise FileNotFoundError("haproxy not found: apt-get install haproxy (.ci/run does)")
    return found


def haproxy_version() -> str:
    out = subprocess.run([haproxy_binary(), "-v"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free_on(hosts: Iterable[str]) -> int:
    """One port number that is free on every one of these loopback addresses."""
    hosts = list(hosts)
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no common free port on {hosts}")


def rendered_gateway_files(values: Mapping[str, Any]) -> dict[str, str]:
    """The gateway ConfigMap's files, from the real `helm template` of the chart."""
    (configmap,) = [
        d for d in yaml.safe_load_all(helm_template(values, show_only=[CONFIGMAP])) if d
    ]
    assert configmap["kind"] == "ConfigMap"
    return dict(configmap["data"])


def service_addresses(config: str) -> list[str]:
    """The `<fqdn>:<port>` of every model Service the rendered config forwards to."""
    return [f"{fqdn}:{port}" for fqdn, port in _SERVER_TEMPLATE.findall(config)]


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the rendered haproxy.cfg no longer contains {old!r}"
    return text.replace(old, new)


def localize(
    config: str,
    root: Path,
    *,
    dns_port: int,
    http_port: int,
    upstream_port: int,
    services: Iterable[str],
    tls_port: int | None = None,
) -> str:
    """The rendered config, runnable here: the narrow, explicit substitutions listed above."""
    for mount, local in MOUNTS.items():
        if mount in config:
            config = config.replace(mount, str(root / local))
    config = _replace(config, "  parse-resolv-conf\n", f"  nameserver stub 127.0.0.1:{dns_port}\n")
    config = _replace(config, "  bind :8080\n", f"  bind 127.0.0.1:{http_port}\n")
    if tls_port is not None:
        config = _replace(config, "  bind :8443 ", f"  bind 127.0.0.1:{tls_port} ")
    for service in services:
        fqdn = service.rsplit(":", 1)[0]
        config = _replace(config, f" {service}\n", f" {fqdn}:{upstream_port}\n")
    return config


@dataclass
class StubDNS:
    """A UDP DNS server on 127.0.0.1 answering A queries from `records` (mutable, TTL 1 s)."""

    records: dict[str, list[str]] = field(default_factory=dict)
    sock: socket.socket = field(init=False)
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # a malformed packet: DNS servers drop those
                continue
            self.sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True)
            addresses = self.records.get(name)
            if addresses is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A and addresses:
                response.answer.append(dns.rrset.from_text(question.name, 1, "IN", "A", *addresses))
            # AAAA, or a name with no ready pod: NOERROR with no answer.
        return response

    def close(self) -> None:
        self.running = False
        self.sock.close()
        self.thread.join(timeout=2)


@dataclass
class Proxy:
    """A running haproxy; its stdout (the JSON access log) goes to `log_path`."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    tls_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def server_stats(self, backend: str) -> list[dict[str, str]]:
        """`show stat` on the runtime API socket (the pod's /var/run/haproxy), per server."""
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.log_path.parent / "run" / "admin.sock"))
            admin.sendall(b"show stat\n")
            data = b""
            while chunk := admin.recv(65536):
                data += chunk
        header, *rows = data.decode().lstrip("# ").splitlines()
        names = header.split(",")
        stats = [dict(zip(names, row.split(","), strict=False)) for row in rows if row]
        return [r for r in stats if r["pxname"] == backend and r["svname"] not in ("BACKEND",)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)  # soft stop, as the image's STOPSIGNAL
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def write_gateway(
    files: Mapping[str, str], root: Path, config: str, keys: str, key_file: str
) -> Path:
    """Lay the ConfigMap and the keys Secret out as the pod's mounts would; returns the cfg path."""
    for local in MOUNTS.values():
        (root / local).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / "conf" / name).write_text(text)
    (root / "conf" / "haproxy.cfg").write_text(config)
    (root / "keys" / key_file).write_text(keys)
    return root / "conf" / "haproxy.cfg"


def self_signed_certificate(directory: Path) -> Path:
    """A certificate for 127.0.0.1, laid out as the pod mounts the TLS Secret; returns the cert."""
    cert = directory / "gateway.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(directory / "gateway.pem.key"), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert


def check_config(config_path: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c`: the proxy's own check of a configuration."""
    return subprocess.run(
        [haproxy_binary(), "-c", "-f", str(config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=config_path.parent,
    )


def start_proxy(config_path: Path, port: int, log_path: Path, tls_port: int | None = None) -> Proxy:
    """Run haproxy in the foreground, as the pod does; returns once /healthz answers."""
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config_path.parent,
        )
    proxy = Proxy(process, port, log_path, tls_port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{proxy.url}/healthz", timeout=1).status_code == 200:
                return proxy
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proxy.stop()
    raise RuntimeError(f"haproxy did not answer /healthz: {log_path.read_text()}")


@dataclass
class Ping:
    """A real `python -m ping` bound to one loopback address; its output goes to a file."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_ping(model_dir: Path, host: str, port: int, log_path: Path, **env: str) -> Ping:
    environment = {
        **os.environ,
        "PING_MODEL_DIR": str(model_dir),
        "PING_HOST": host,
        "PING_PORT": str(port),
        "PING_ACCESS_LOG": "true",
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ping"],
            env=environment,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Ping(process, host, port, log_path)


def wait_ping_ready(ping: Ping, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping.process.poll() is not None:
            raise RuntimeError(f"ping exited early: {ping.log_path.read_text()}")
        try:
            if httpx.get(f"http://{ping.host}:{ping.port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("ping did not become ready in time")


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
