#!/usr/bin/env bash
# Run every test of the project: lint, unit tests, and the molecule scenarios.
#   scripts/test.sh                 everything
#   QVC_SCENARIOS="docker" scripts/test.sh   only these molecule scenarios
#   QVC_SKIP_MOLECULE=1 scripts/test.sh      lint + unit tests only
# Logs go to build/test-logs/; a summary with the wall time of each stage is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
logs=build/test-logs
rm -rf "$logs"; mkdir -p "$logs"

# Scenarios in the order they run; they need the base image (built once, cached by recipe hash).
default_scenarios="docker common"
for s in nvidia nfs monitoring cluster; do [ -f "molecule/$s/molecule.yml" ] && default_scenarios+=" $s"; done
scenarios="${QVC_SCENARIOS:-$default_scenarios}"

declare -a names=() results=() times=()
run_stage() {  # name, command...
  local name="$1"; shift
  local start=$SECONDS rc
  printf '=== %-28s ' "$name"
  "$@" >"$logs/$name.log" 2>&1; rc=$?
  local took=$((SECONDS - start))
  names+=("$name"); times+=("$took"); results+=("$rc")
  if [ "$rc" -eq 0 ]; then printf 'ok      %4ss\n' "$took"
  else
    printf 'FAILED  %4ss (rc=%s, log: %s)\n' "$took" "$rc" "$logs/$name.log"
    tail -n 60 "$logs/$name.log" | sed 's/^/    | /'
  fi
  return "$rc"
}

run_stage yamllint yamllint --strict .
run_stage ansible-lint ansible-lint --profile production
run_stage syntax-check ansible-playbook -i inventory/example/hosts.yml site.yml --syntax-check
# pytest's exit code 5 ("no tests collected") is a failure here, like any non-zero code.
run_stage unit-controller python -m pytest -q tests/unit
if [ -x webui/.venv/bin/python ]; then
  run_stage unit-webui bash -c 'cd webui && .venv/bin/python -m pytest -q tests'
fi

if [ "${QVC_SKIP_MOLECULE:-0}" != 1 ]; then
  run_stage base-image molecule/_platform/build-base-image.sh
  for s in $scenarios; do
    run_stage "molecule-$s" molecule test -s "$s"
  done
fi

echo
echo "stage                          result  seconds"
fail=0
for i in "${!names[@]}"; do
  r=ok; [ "${results[$i]}" -ne 0 ] && { r=FAILED; fail=1; }
  printf '%-30s %-7s %6s\n' "${names[$i]}" "$r" "${times[$i]}"
done
printf '%-30s %-7s %6s\n' total "$([ $fail -eq 0 ] && echo ok || echo FAILED)" "$SECONDS"
exit $fail
