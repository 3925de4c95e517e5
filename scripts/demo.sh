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
inventory=demo/inventory/hosts.yml
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

# The WebUI image (content-addressed tag: a rebuilt image means new containers) saved as an
# archive for the workers, and the tiny random-weight model; both cached under build/demo.
build_artifacts() {
  local dir=build/demo id tag
  mkdir -p "$dir"
  # the image this build made (qvc/webui:build-<recipe hash>), not :latest (another tree's build
  # on the same Docker engine may move it)
  built=$(QVC_IMAGE_TAG_LATEST=0 webui/build-image.sh | sed -n 's/.* = \(qvc\/webui:build-[0-9a-f]*\).*/\1/p' | tail -1)
  id=$(docker image inspect --format '{{.Id}}' "$built"); id=${id#sha256:}
  tag="demo-${id:0:12}"
  docker tag "$built" "qvc/webui:$tag"
  if [ ! -f "$dir/qvc-webui-$tag.tar" ]; then
    log "saving qvc/webui:$tag to $dir (once per image)"
    find "$dir" -maxdepth 1 -name 'qvc-webui-demo-*.tar' -delete
    docker save -o "$dir/qvc-webui-$tag.tar" "qvc/webui:$tag"
  fi
  printf '%s' "$tag" >"$dir/webui-image-tag"
  # (re)build the tiny model unless it is the vLLM-servable one (head_dim 64; older ones had 16)
  grep -qs '"head_dim": 64' "$dir/tiny-qwen3-vl/config.json" \
    || { rm -rf "$dir/tiny-qwen3-vl"; webui/.venv/bin/python webui/scripts/build_tiny_model.py "$dir/tiny-qwen3-vl"; }
}

up() {
  local start=$SECONDS
  molecule/_platform/build-base-image.sh
  build_artifacts
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
  cat <<MSG

  UI:            http://127.0.0.1:$lb_port/
  API (OpenAI):  curl -s http://127.0.0.1:$lb_port/v1/chat/completions -H 'Content-Type: application/json' \\
                   -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'
  The demo serves a tiny RANDOM-WEIGHT Qwen3-VL checkpoint: answers are gibberish by design.
  Health:        ansible-playbook -i $inventory playbooks/health.yml
  Tear down:     make demo-down
MSG
}

case "${1:-up}" in
  up) shift || true; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
