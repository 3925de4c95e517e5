#!/usr/bin/env bash
# Prepare this machine (Debian/Ubuntu, as root) to run the demo and the tests:
# system packages, the Python virtual environments and a running Docker engine.
# Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs system packages and starts dockerd)"
command -v apt-get >/dev/null || die "needs a Debian or Ubuntu machine (apt-get not found)"

# System packages used by the controller side of the tests and the demo.
pkgs=(python3 python3-venv debootstrap busybox-static ca-certificates iptables nginx-light)
[ "${QVC_WITH_QEMU:-1}" = 1 ] && pkgs+=(qemu-system-x86 qemu-utils openssh-client e2fsprogs)
[ "${QVC_WITH_BROWSER:-1}" = 1 ] && pkgs+=(chromium)
# The engine, not the client, decides: some images ship a Docker client without dockerd.
command -v dockerd >/dev/null || pkgs+=(docker.io)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The controller's nginx is only used for `nginx -t` on rendered configs: keep it stopped.
if systemctl is-active --quiet nginx 2>/dev/null; then systemctl stop nginx || true; fi
pkill -x nginx 2>/dev/null || true

# Docker engine: start dockerd when nothing answers.
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || die "no dockerd after installing docker.io (is another Docker package held?)"
  log "starting dockerd"
  if command -v systemctl >/dev/null && systemctl start docker 2>/dev/null; then :; else
    nohup dockerd >/var/log/qvc-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not come up (see /var/log/qvc-dockerd.log)"
fi

# Controller virtual environment (Ansible toolchain).
if [ ! -x .venv/bin/ansible-playbook ] || [ requirements.txt -nt .venv/.installed ]; then
  log "creating .venv from requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  touch .venv/.installed
fi

# WebUI service virtual environment (vLLM CPU + the torchvision shim + test tools: its tests, the tiny
# model builder, benchmarks), made by webui/scripts/setup-venv.sh; rebuilt from scratch when any of
# its inputs is newer than the last build.
if [ -f webui/scripts/setup-venv.sh ]; then
  stale=0
  [ -x webui/.venv/bin/python ] && [ -f webui/.venv/.installed ] || stale=1
  for f in webui/requirements*.txt webui/scripts/setup-venv.sh webui/shim/*; do
    [ -e "$f" ] && [ "$f" -nt webui/.venv/.installed ] && stale=1
  done
  if [ "$stale" = 1 ]; then
    log "creating webui/.venv (vLLM CPU, about 3.5 GB) with webui/scripts/setup-venv.sh"
    rm -rf webui/.venv
    webui/scripts/setup-venv.sh webui/.venv
  fi
fi
log "ready"
