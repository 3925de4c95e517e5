#!/usr/bin/env bash
# Build (or reuse) the Debian 12 QEMU guest image used by the real-kernel NFS scenario.
#
#   molecule/_qemu/build-image.sh            # prints the cache directory of the image on stdout
#
# The image is a raw ext4 root filesystem (no partition table, root=/dev/vda) plus the
# guest's kernel and initramfs, booted directly with -kernel/-initrd (no bootloader).
# Everything is cached by recipe hash under
#   ${QVC_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qvc/qemu}/<hash>/
#     disk.img  vmlinuz  initrd.img  id_ed25519(.pub)  recipe
# A second call with the same recipe costs nothing. Guests never write to disk.img: each
# guest boots from its own throw-away qcow2 overlay (see vm.sh).
#
# Environment: QVC_DEBIAN_MIRROR (default http://deb.debian.org/debian), QVC_QEMU_CACHE.
# Needs root (debootstrap, chroot), debootstrap, mkfs.ext4 (e2fsprogs >= 1.43 for -d).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
suite=bookworm
mirror="${QVC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
disk_size=2G

# debootstrap set (minbase + what systemd/ssh/ansible need); kernel and NFS come from apt
# inside the chroot so that maintainer scripts (initramfs!) run properly. acl (setfacl) is
# what Ansible uses to become the unprivileged webui service account; on real hosts the
# common role installs it.
base_pkgs="systemd,systemd-sysv,udev,dbus,kmod,iproute2,procps,util-linux,openssh-server,python3,python3-apt,sudo,acl,less"
# docker.io + python3-requests (what the docker role installs with docker_install_source: distro),
# apparmor (Debian installs it by default, and the cloud kernel enables AppArmor: without
# apparmor_parser Docker cannot load its docker-default profile and starts no container)
# and busybox-static (the stand-in instance image is built from it) serve the reboot test of
# molecule/nfs: unpacking them natively here once per recipe is far cheaper than apt under TCG
# on every run. Docker is disabled below, so only the guest that runs the docker role starts it.
chroot_pkgs="linux-image-cloud-amd64 initramfs-tools nfs-common nfs-kernel-server docker.io python3-requests apparmor busybox-static"

# Everything that changes the image is part of the recipe hash (including this script).
recipe="debian12|$suite|$mirror|$base_pkgs|$chroot_pkgs|$disk_size|$(sha256sum "$0" | cut -c1-64)"
hash="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
cache_root="${QVC_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qvc/qemu}"
out="$cache_root/$hash"

log() { echo "build-image: $*" >&2; }

mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9   # one builder at a time; a waiting second caller then finds the cache

if [[ -f "$out/.complete" ]]; then
  log "cached $out"
  echo "$out"
  exit 0
fi

[[ $EUID -eq 0 ]] || { log "must run as root (debootstrap/chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install -y debootstrap)"; exit 1; }
command -v mkfs.ext4 >/dev/null || { log "mkfs.ext4 missing (e2fsprogs)"; exit 1; }

start=$(date +%s)
work="$(mktemp -d /var/tmp/qvc-qemu-build.XXXXXX)"
root="$work/root"
mkdir -p "$root"
cleanup() {
  for m in dev/pts dev proc sys; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $suite from $mirror (log: $work/debootstrap.log)"
if ! debootstrap --variant=minbase --keyring="$keyring" --include="$base_pkgs" \
     "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -30 "$work/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
fi

# No services may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90qvc-no-recommends"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

log "apt-get install $chroot_pkgs (in chroot)"
if ! chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
     sh -c "apt-get update -qq && apt-get install -y -qq $chroot_pkgs" >"$work/apt.log" 2>&1; then
  tail -30 "$work/apt.log" >&2
  log "apt-get in chroot failed"
  exit 1
fi
for m in dev/pts dev proc sys; do umount -l "$root/$m"; done

# ---- guest configuration -------------------------------------------------------------
echo qvc-guest >"$root/etc/hostname"    # overridden per guest by systemd.hostname= on the cmdline
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,noatime,errors=remount-ro 0 1\n' >"$root/etc/fstab"
: >"$root/etc/machine-id"               # generated fresh on every (overlay) boot
rm -f "$root/etc/resolv.conf"           # guests need no DNS; apt uses http mirrors via slirp DNS
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"

# Networking: systemd-networkd, interfaces identified by the MAC vm.sh assigns.
#   52:54:00:12:00:NN  user-mode (slirp) NIC, DHCP, ssh forwarded from the host
#   52:54:00:77:00:NN  private guest-to-guest NIC, static 10.77.0.NN/24
netdir="$root/etc/systemd/network"
mkdir -p "$netdir"
for i in 1 2 3 4 5 6 7 8 9; do
  printf '[Match]\nMACAddress=52:54:00:12:00:0%s\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    "$i" >"$netdir/10-mgmt-$i.network"
  printf '[Match]\nMACAddress=52:54:00:77:00:0%s\n\n[Network]\nAddress=10.77.0.%s/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    "$i" "$i" >"$netdir/20-priv-$i.network"
done
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Do not make boot wait for "network online" of every link.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20\n' \
  >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf"

# Trim boot work under TCG; NFS server and Docker are installed but left for the roles to enable/start.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer getty@tty1.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
chroot "$root" systemctl disable nfs-server.service >/dev/null 2>&1 || true
# Docker (and containerd) is installed but left for the docker role to enable/start.
chroot "$root" systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true

# ssh: key-only root login with a key generated for this image.
ssh-keygen -q -t ed25519 -N '' -C qvc-molecule-nfs -f "$work/id_ed25519"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
  >"$root/etc/ssh/sshd_config.d/qvc.conf"

rm -f "$root/usr/sbin/policy-rc.d"
# Keep the apt lists: the roles' apt tasks then need no "apt-get update" under TCG.
rm -rf "$root"/var/cache/apt/archives/*.deb

# Kernel + initramfs are booted directly by QEMU.
mkdir -p "$work/out"
cp -L "$root/vmlinuz" "$work/out/vmlinuz"
cp -L "$root/initrd.img" "$work/out/initrd.img"
mkfs.ext4 -q -F -L qvcroot -d "$root" "$work/out/disk.img" "$disk_size" >&2
cp "$work/id_ed25519" "$work/id_ed25519.pub" "$work/out/"
printf '%s\n' "$recipe" >"$work/out/recipe"

rm -rf "$out"
mv "$work/out" "$out"
touch "$out/.complete"
log "built $out in $(( $(date +%s) - start ))s"
echo "$out"
