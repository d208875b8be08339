#!/usr/bin/env bash
# A stand-in for a container registry, for machines that reach only PyPI and Debian apt
# (our CI). It is plumbing around the real Dockerfile, not a second one:
#   - a Docker engine (Debian's docker.io; dockerd started here, stopped by its PID);
#   - the Dockerfile's base image, made with debootstrap (bookworm + python3, python3-venv)
#     and tagged with the exact name the Dockerfile's FROM uses, so the legacy builder
#     finds it locally instead of pulling;
#   - the lockfile's wheels, downloaded on the host and served on 127.0.0.1 for pip
#     inside the build (PIP_NO_INDEX/PIP_FIND_LINKS build args, `--network host`).
#
# Usage:
#   scripts/docker-standin.sh run CMD...   up, run CMD with the build env, then down
#   scripts/docker-standin.sh up           start everything (idempotent)
#   scripts/docker-standin.sh env          print the build env as `export` lines
#   scripts/docker-standin.sh down         stop what `up` started, by PID
#
# Knobs: STANDIN_DIR (state and caches, default .cache/docker-standin), WHEELHOUSE_PORT
# (default 8765), PYTHON (a CPython 3.11 for `pip download`, default python3.11).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${STANDIN_DIR:-$ROOT/.cache/docker-standin}
PORT=${WHEELHOUSE_PORT:-8765}
PYTHON=${PYTHON:-python3.11}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3

log() { printf 'docker-standin: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

base_image() {
  # The single source of truth for the base image name is the Dockerfile's default.
  local ref
  ref=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/Dockerfile")
  [[ -n $ref ]] || die "no 'ARG PYTHON_IMAGE=' line in $ROOT/Dockerfile"
  printf '%s\n' "$ref"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.5
  done
}

install_tools() {
  command -v dockerd >/dev/null && command -v debootstrap >/dev/null && return
  log "installing docker.io and debootstrap from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    log "using the Docker engine that is already running"
    return
  fi
  alive "$STATE/dockerd.pid" && die "dockerd (pid $(cat "$STATE/dockerd.pid")) runs but does not answer"
  log "starting dockerd (log: $STATE/dockerd.log)"
  dockerd >"$STATE/dockerd.log" 2>&1 &
  echo $! >"$STATE/dockerd.pid"
  wait_for 60 "dockerd to answer" docker info
}

import_base() {
  local ref tarball key
  ref=$(base_image)
  if docker image inspect "$ref" >/dev/null 2>&1; then
    log "base image $ref is present"
    return
  fi
  key=$(printf '%s %s' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
  tarball=$STATE/rootfs-$SUITE-$key.tar
  if [[ ! -f $tarball ]]; then
    log "debootstrap $SUITE with $PACKAGES (cached as $tarball)"
    local rootfs=$STATE/rootfs
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" \
      http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $STATE/debootstrap.log"
    # What a slim image leaves out too: package lists, caches, docs.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $tarball as $ref"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.opencontainers.image.base.description="debootstrap stand-in, not the official image"' \
    --change 'CMD ["python3"]' \
    "$tarball" "$ref" >/dev/null
}

download_wheels() {
  # --isolated: only PyPI and the lockfile count, not this host's pip config or PIP_* env.
  # The wheels are for this interpreter's platform, so it must be CPython 3.11 on Linux.
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || die "$PYTHON is not CPython 3.11; set PYTHON"
  log "downloading the wheels of requirements.lock into $STATE/wheelhouse"
  "$PYTHON" -m pip --isolated download --quiet --disable-pip-version-check \
    --no-deps --only-binary=:all: --require-hashes \
    -r "$ROOT/requirements.lock" -d "$STATE/wheelhouse"
}

serve_wheels() {
  if alive "$STATE/wheelhouse.pid"; then
    log "wheelhouse already served on 127.0.0.1:$PORT"
    return
  fi
  log "serving the wheelhouse on 127.0.0.1:$PORT"
  "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$STATE/wheelhouse" "$PORT" \
    >"$STATE/wheelhouse.log" 2>&1 &
  echo $! >"$STATE/wheelhouse.pid"
  wait_for 15 "the wheelhouse server" "$PYTHON" -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)"
}

print_env() {
  # The legacy builder uses a local base image as is; BuildKit would try the registry.
  printf 'export DOCKER_BUILDKIT=0\n'
  printf "export DOCKER_BUILD_FLAGS='--network host --build-arg PIP_NO_INDEX=1 %s'\n" \
    "--build-arg PIP_FIND_LINKS=http://127.0.0.1:$PORT/"
}

stop_pid() {  # stop_pid NAME: SIGTERM the recorded process, wait for it to exit
  local file=$STATE/$1.pid pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && die "$1 (pid $pid) did not exit"
  fi
  rm -f "$file"
}

up() {
  mkdir -p "$STATE"
  install_tools
  start_dockerd
  import_base
  download_wheels
  serve_wheels
}

down() {
  stop_pid wheelhouse
  stop_pid dockerd
}

case ${1:-} in
  up) up ;;
  down) down ;;
  env) print_env ;;
  run)
    shift
    (($#)) || die "usage: $0 run CMD..."
    trap down EXIT
    up
    eval "$(print_env)"
    "$@"
    ;;
  *) die "usage: $0 {run CMD...|up|env|down}" ;;
esac
