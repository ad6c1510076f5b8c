#!/usr/bin/env bash
# Sanitizers and fuzzing (docs/guarantees.md, "Sanitizers and fuzzing"). Needs the nightly
# toolchain (`cargo +nightly`), which it does not install; says so and stops if it is missing.
#
#   scripts/sanitize.sh                   # AddressSanitizer + LeakSanitizer: stress, pinning,
#                                         # thread_locals, call_slots
#   scripts/sanitize.sh asan TEST...      # the same on the named test files (tests/TEST.rs)
#   scripts/sanitize.sh fuzz [SECONDS]    # each cargo-fuzz target for SECONDS (default 300)
#
# AddressSanitizer: the tests and hotmod are built with `-Zsanitizer=address` for the host
# target given as CARGO_BUILD_TARGET, so build scripts and proc macros (which run inside the
# uninstrumented rustc) are left alone; `-rdynamic` exports the ASan runtime from the test binary
# to the fixture cdylibs, which do not link it themselves. The fixtures are built by the tests
# (tests/support/mod.rs) with the cargo, RUSTFLAGS and CARGO_BUILD_TARGET they inherit, into
# target/hotmod-fixtures-address, apart from the plain ones. Everything goes to target/asan:
# nothing of the stable builds is rebuilt. std is not instrumented (no rust-src for -Zbuild-std).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "sanitize.sh: no nightly toolchain (\`cargo +nightly\` fails); sanitizers and cargo-fuzz need it:" >&2
    echo "    rustup toolchain install nightly" >&2
    exit 2
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')

asan() {
    local tests=("$@")
    [ ${#tests[@]} -eq 0 ] && tests=(stress pinning thread_locals call_slots)
    local sysroot
    sysroot=$(rustc +nightly --print sysroot)
    if ! ls "$sysroot/lib/rustlib/$host/lib/"*rt.asan.a >/dev/null 2>&1; then
        echo "sanitize.sh: nightly has no AddressSanitizer runtime for $host" >&2
        exit 2
    fi
    local args=()
    for t in "${tests[@]}"; do args+=(--test "$t"); done
    echo "== AddressSanitizer + LeakSanitizer: ${tests[*]} (target/asan)"
    # abort_on_error + fast_unwind_on_fatal: a crash ASan reports still ends in a signal
    # (SIGABRT), which tests/thread_locals.rs's control `without_the_redirect_…_crashes_at_exit`
    # expects of its child. Without them ASan turns the child's SIGSEGV into exit status 1 (its
    # default unwinder faults again on the unmapped library: "nested bug in the same thread").
    # Leaks: scripts/sanitize-lsan.supp suppresses what module code allocated and its unloaded
    # generation still owned (thread-locals of live threads, statics); all other leaks count.
    CARGO_TARGET_DIR=target/asan \
        CARGO_BUILD_TARGET="$host" \
        RUSTFLAGS="-Zsanitizer=address -C link-arg=-rdynamic" \
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_fatal=1" \
        LSAN_OPTIONS="suppressions=$PWD/scripts/sanitize-lsan.supp:print_suppressions=1" \
        cargo +nightly test "${args[@]}"
}

fuzz() {
    local seconds=${1:-300}
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "sanitize.sh: cargo-fuzz is not installed: cargo install --locked cargo-fuzz" >&2
        exit 2
    fi
    cd fuzz
    cargo +nightly fuzz build
    for target in elf_reader verify_descriptor; do
        # A fresh corpus per run (the committed seeds are read-only inputs), so the counts of
        # different runs compare.
        local corpus
        corpus=$(mktemp -d)
        local seeds=()
        [ -d "seeds/$target" ] && seeds=("seeds/$target")
        echo "== fuzz: $target for $seconds s"
        local log status=0
        log=$(mktemp)
        cargo +nightly fuzz run "$target" "$corpus" "${seeds[@]}" -- \
            -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
        rm -rf "$corpus"
        if [ "$status" -ne 0 ]; then
            tail -n 80 "$log" >&2
            rm -f "$log"
            echo "fuzz: $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
            exit 1
        fi
        rm -f "$log"
    done
}

case ${1:-asan} in
asan) shift || true; asan "$@" ;;
fuzz) shift; fuzz "$@" ;;
*) echo "usage: scripts/sanitize.sh [asan [TEST...] | fuzz [SECONDS]]" >&2; exit 2 ;;
esac
