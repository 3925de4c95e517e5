#!/usr/bin/env bash
# Build a tiny test image from the controller's static busybox and `docker save` it to $1.
# Used by the docker scenario to exercise the offline image archive path.
set -euo pipefail
out="$1"
bb=/bin/busybox  # from busybox-static

[ -x "$bb" ] || { echo "busybox-static is needed on the controller (apt-get install -y busybox-static)" >&2; exit 1; }
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www"
cp "$bb" "$root/bin/busybox"
for applet in sh httpd ls cat echo sleep; do ln -s busybox "$root/bin/$applet"; done
echo "hello from qvc-web" >"$root/www/index.html"
tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - qvc/busybox-test:1 >/dev/null
docker save -o "$out" qvc/busybox-test:1
