#!/usr/bin/env bash
# Mutation testing of the code that keeps hotmod's promises (docs/guarantees.md, "Mutation
# testing"): installs cargo-mutants if it is missing, then mutates one area at a time and runs
# only the tests that guard it. Not part of CI: a full run takes about an hour on 2 cores.
#
#   scripts/mutants.sh                 # every area
#   scripts/mutants.sh verify watcher  # some areas: verify | pin | hazard | collect | watcher
#
# Extra arguments for cargo-mutants go in MUTANTS_ARGS, e.g. MUTANTS_ARGS=--in-place to mutate
# this tree itself (faster: no copy, the warm target directory; only in a checkout nobody else
# is building in). Results: target/mutants/<area>/mutants.out/{caught,missed,timeout,unviable}.txt
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi

# area  files-to-mutate  name-filter  test binaries that guard it
run() {
    local area=$1 file=$2 filter=$3
    shift 3
    local tests=()
    for t in "$@"; do tests+=(--test "$t"); done
    mkdir -p "target/mutants/$area"
    echo "== mutants: $area ($file${filter:+, matching $filter})"
    # shellcheck disable=SC2086
    cargo mutants -p hotmod --test-workspace true --no-shuffle --baseline skip --timeout 300 \
        --build-timeout 900 --output "target/mutants/$area" --file "$file" \
        ${filter:+--re "$filter"} ${MUTANTS_ARGS:-} -- --no-fail-fast "${tests[@]}" || true
}

areas=("$@")
[ ${#areas[@]} -eq 0 ] && areas=(verify collect pin hazard watcher)
for area in "${areas[@]}"; do
    case $area in
    verify) run verify hotmod/src/verify.rs "" bad_input pinned ;;
    collect) run collect hotmod/src/runtime.rs "collect" core generations pinned retire_blocked retire_reentry ;;
    pin) run pin hotmod/src/pin.rs "" core generations pinned pinning rollback call_slots state_conservation ;;
    hazard) run hazard hotmod/src/hazard.rs "" core generations pinning call_slots state_conservation ;;
    watcher) run watcher hotmod/src/watcher.rs "" live_reload autostart partial_writes ;;
    *) echo "unknown area $area" >&2; exit 2 ;;
    esac
done
