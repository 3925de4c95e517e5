#!/usr/bin/env bash
# Build the molecule base image (systemd as PID 1) locally, without any registry.
#
#   molecule/_platform/build-base-image.sh [platform]
#
# platform: debian12 (default) or ubuntu2204 (needs Ubuntu's archive, unreachable on the
# development machines; set QVC_UBUNTU_MIRROR to a reachable mirror to build it).
# The image is tagged  qvc/<platform>-systemd:<recipe-hash>  and  qvc/<platform>-systemd:latest.
# A tag whose recipe hash already exists is reused, so a second call costs nothing.
set -euo pipefail

platform="${1:-${QVC_PLATFORM:-debian12}}"
here="$(cd "$(dirname "$0")" && pwd)"

case "$platform" in
  debian12)
    suite=bookworm
    mirror="${QVC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    components=main
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg ;;
  ubuntu2204)
    suite=jammy
    mirror="${QVC_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
    components=main,universe
    keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg ;;
  *) echo "build-base-image: unknown platform '$platform' (debian12|ubuntu2204)" >&2; exit 2 ;;
esac

# Everything that changes the image is part of the recipe hash.
packages="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,gnupg,curl,iptables,kmod,less"
recipe="$platform|$suite|$mirror|$components|$packages|$(sha256sum "$0" | cut -c1-64)"
hash="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
repo="qvc/${platform}-systemd"

if docker image inspect "$repo:$hash" >/dev/null 2>&1; then
  docker tag "$repo:$hash" "$repo:latest"
  echo "build-base-image: $repo:$hash cached"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "build-base-image: debootstrap missing (apt-get install -y debootstrap)" >&2; exit 1; }
root="$(mktemp -d /var/tmp/qvc-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
debootstrap --variant=minbase --components="$components" --keyring="$keyring" \
  --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -30 "$root.log" >&2; echo "build-base-image: debootstrap failed (log: $root.log)" >&2; exit 1; }

# Container-friendly systemd: no gettys, no udev triggers, no machine-id baked in.
for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
            systemd-firstboot.service systemd-journald-audit.socket; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
: >"$root/etc/machine-id"
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90qvc-no-recommends"
rm -rf "$root"/var/cache/apt/archives/*.deb
# Keep the apt lists but make them look stale, so the first `apt update` in a test really runs.
touch -d @0 "$root"/var/lib/apt/lists "$root"/var/lib/apt/lists/* 2>/dev/null || true

tar -C "$root" -c . | docker import \
  -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
  - "$repo:$hash" >/dev/null
docker tag "$repo:$hash" "$repo:latest"
rm -f "$root.log"
echo "build-base-image: built $repo:$hash in $(( $(date +%s) - start ))s"
