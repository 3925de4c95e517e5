#!/usr/bin/env bash
# Start/stop throw-away QEMU (TCG) guests booted from the image build-image.sh caches.
#
#   vm.sh start   NAME STATE_DIR IMAGE_DIR INDEX SSH_PORT PRIV_MODE PRIV_PORT
#   vm.sh wait    NAME STATE_DIR IMAGE_DIR SSH_PORT TIMEOUT_S
#   vm.sh stop    NAME STATE_DIR
#
# NAME       guest name (also its hostname via systemd.hostname=)
# STATE_DIR  per-scenario directory for overlays, pid files and serial logs
# INDEX      1..9: the guest gets 10.77.0.INDEX/24 on the private NIC (MAC 52:54:00:77:00:0INDEX)
#            and DHCP on the user-mode NIC (MAC 52:54:00:12:00:0INDEX)
# SSH_PORT   loopback port forwarded to the guest's port 22
# PRIV_MODE  listen|connect: the private guest-to-guest link is a QEMU socket netdev pair;
#            exactly one guest listens on 127.0.0.1:PRIV_PORT, the other connects to it.
#
# Guests run with -accel tcg (KVM is not usable on the CI/dev machines), one vCPU, 1 GiB.
# QVC_QEMU_MEM / QVC_QEMU_ACCEL override the memory size and accelerator.
set -euo pipefail

cmd="${1:-}"; shift || true
log() { echo "vm.sh: $*" >&2; }

case "$cmd" in
  start)
    [[ $# -eq 7 ]] || { log "usage: start NAME STATE_DIR IMAGE_DIR INDEX SSH_PORT listen|connect PRIV_PORT"; exit 2; }
    name=$1 state=$2 image=$3 idx=$4 ssh_port=$5 priv_mode=$6 priv_port=$7
    [[ $idx =~ ^[1-9]$ ]] || { log "INDEX must be 1..9"; exit 2; }
    [[ -f $image/.complete ]] || { log "no image in $image (run build-image.sh)"; exit 1; }
    for tool in qemu-system-x86_64 qemu-img; do
      command -v "$tool" >/dev/null || { log "$tool missing (apt-get install -y qemu-system-x86 qemu-utils)"; exit 1; }
    done
    mkdir -p "$state"
    pidfile="$state/$name.pid"
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "$name already running (pid $(cat "$pidfile"))"; exit 0
    fi
    overlay="$state/$name.qcow2"
    rm -f "$overlay"
    qemu-img create -q -f qcow2 -F raw -b "$image/disk.img" "$overlay"
    case "$priv_mode" in
      listen)  priv="socket,id=priv,listen=127.0.0.1:$priv_port" ;;
      connect) priv="socket,id=priv,connect=127.0.0.1:$priv_port" ;;
      *) log "PRIV_MODE must be listen or connect"; exit 2 ;;
    esac
    date +%s >"$state/$name.started"
    qemu-system-x86_64 \
      -name "qvc-$name" \
      -accel "${QVC_QEMU_ACCEL:-tcg}" -smp 1 -m "${QVC_QEMU_MEM:-1024}" \
      -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
      -append "console=ttyS0 root=/dev/vda rw quiet systemd.hostname=$name systemd.show_status=0" \
      -drive "file=$overlay,if=virtio,format=qcow2,cache=unsafe" \
      -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
      -device "virtio-net-pci,netdev=mgmt,mac=52:54:00:12:00:0$idx" \
      -netdev "$priv" \
      -device "virtio-net-pci,netdev=priv,mac=52:54:00:77:00:0$idx" \
      -display none -monitor none -serial "file:$state/$name.console.log" \
      -pidfile "$pidfile" -daemonize
    log "$name started (pid $(cat "$pidfile"), ssh 127.0.0.1:$ssh_port, 10.77.0.$idx)"
    ;;

  wait)
    [[ $# -eq 5 ]] || { log "usage: wait NAME STATE_DIR IMAGE_DIR SSH_PORT TIMEOUT_S"; exit 2; }
    name=$1 state=$2 image=$3 ssh_port=$4 timeout_s=$5
    deadline=$(( $(date +%s) + timeout_s ))
    while :; do
      if ssh -q -i "$image/id_ed25519" -p "$ssh_port" -o BatchMode=yes -o ConnectTimeout=10 \
           -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
           root@127.0.0.1 true 2>/dev/null; then
        started=$(cat "$state/$name.started" 2>/dev/null || date +%s)
        echo "$name ssh up after $(( $(date +%s) - started ))s"
        exit 0
      fi
      if ! kill -0 "$(cat "$state/$name.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
        log "$name: qemu is not running; console:"; tail -40 "$state/$name.console.log" >&2 || true; exit 1
      fi
      if (( $(date +%s) >= deadline )); then
        log "$name: no ssh after ${timeout_s}s; console tail:"; tail -40 "$state/$name.console.log" >&2 || true; exit 1
      fi
      sleep 3
    done
    ;;

  stop)
    [[ $# -eq 2 ]] || { log "usage: stop NAME STATE_DIR"; exit 2; }
    name=$1 state=$2
    pidfile="$state/$name.pid"
    if [[ -f $pidfile ]]; then
      pid=$(cat "$pidfile")
      # Only kill the pid if it really is our qemu guest.
      if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q -- "-name qvc-$name "; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$pidfile"
    fi
    rm -f "$state/$name.qcow2" "$state/$name.started"
    log "$name stopped"
    ;;

  *)
    log "usage: vm.sh start|wait|stop ..."; exit 2 ;;
esac
