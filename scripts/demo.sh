#!/usr/bin/env bash
# The local demo: systemd containers on this machine play the cluster's hosts, and
# site.yml provisions them exactly as it would provision bare-metal hosts.
#   scripts/demo.sh up     build what is needed, start the hosts, run site.yml
#   scripts/demo.sh down   remove the hosts and their network
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

net=qvc-demo
subnet=172.29.0.0/24
shared="$PWD/build/demo-shared"
inventory=inventory/local-demo/hosts.yml
declare -A ips=([qvc-demo-lb]=172.29.0.10 [qvc-demo-gpu1]=172.29.0.31 [qvc-demo-gpu2]=172.29.0.32)
lb_port="${QVC_DEMO_PORT:-8088}"

log() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

# Every capability but SYS_RESOURCE (the sandbox lacks it, so --privileged fails):
# enough for systemd as PID 1 and a Docker engine inside the container.
host_flags=(--cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp
            --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined)

down() {
  for h in "${!ips[@]}"; do docker rm -f "$h" >/dev/null 2>&1 || true; done
  docker network rm "$net" >/dev/null 2>&1 || true
  log "demo hosts removed"
}

up() {
  local start=$SECONDS
  molecule/_platform/build-base-image.sh
  docker network inspect "$net" >/dev/null 2>&1 || docker network create --subnet "$subnet" "$net" >/dev/null
  mkdir -p "$shared"
  for h in "${!ips[@]}"; do
    docker container inspect "$h" >/dev/null 2>&1 && continue
    extra=()
    case "$h" in
      *gpu*) extra=(-v "$shared:/srv/qvc" --tmpfs /var/lib/docker:exec) ;;
      *lb) extra=(-p "127.0.0.1:$lb_port:80") ;;
    esac
    docker run -d --name "$h" --hostname "$h" --network "$net" --ip "${ips[$h]}" \
      "${host_flags[@]}" "${extra[@]}" qvc/debian12-systemd:latest >/dev/null
  done
  log "hosts up: ${!ips[*]}"
  ansible-playbook -i "$inventory" site.yml "$@"
  log "site.yml finished in $((SECONDS - start))s"
  if [ -f playbooks/lb.yml ]; then
    cat <<MSG

  UI  (Gradio):  http://127.0.0.1:$lb_port/
  API (OpenAI):  curl -s http://127.0.0.1:$lb_port/v1/chat/completions -H 'Content-Type: application/json' \\
                   -d '{"model":"tiny-qwen3-vl","messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'
  The demo serves a tiny RANDOM-WEIGHT Qwen3-VL checkpoint: answers are gibberish by design.
  Tear down: make demo-down
MSG
  else
    cat <<MSG

  Provisioned so far: preflight, common and Docker on the demo hosts.
  Still to come: NVIDIA stack, shared storage, the WebUI instances and the nginx load balancer.
  Tear down: make demo-down
MSG
  fi
}

case "${1:-up}" in
  up) shift || true; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
