#!/usr/bin/env bash
# The public API of the `hotmod` crate must not change by accident. Lists it with
# cargo-public-api (from rustdoc's JSON output, which needs the nightly toolchain) and diffs the
# listings against the blessed ones in docs/:
#
#   docs/public-api.txt         default features (`reload`)
#   docs/public-api-static.txt  --no-default-features: the static build
#   docs/public-api-state.txt   default features plus `state`
#
# One line per public item, with its signature; `#[doc(hidden)]` items (`__private`, `__fuzz`,
# `Module::__new`) are not listed, nor blanket impls (`impl<T> From<T> for T`, …) or the
# nightly-only marker traits `Freeze` and `UnsafeUnpin` (no stable code can observe them; an
# internal field change flips them). Auto traits (`Send`, `Sync`, `Unpin`, `UnwindSafe`, …) are
# listed: losing one breaks users.
#
# A difference fails with the diff. If the change is deliberate, give it an entry with its
# reason in CHANGELOG.md and rewrite the listings with `scripts/public-api.sh --bless`.
#
# Usage: scripts/public-api.sh [--bless]
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-public-api reads one rustdoc JSON format version (rustdoc-types); 0.52.0 reads format 57,
# that of the nightly this project's machines have (1.97.0-nightly, 2026-05-19). A newer nightly
# may need a newer cargo-public-api: raise this, re-bless, and check that the diff is only format.
CARGO_PUBLIC_API_VERSION=0.52.0

bless=false
case "${1:-}" in
    --bless) bless=true ;;
    "") ;;
    *)
        echo "usage: $0 [--bless]" >&2
        exit 2
        ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "skipped: no nightly toolchain (\`cargo +nightly\` fails), which rustdoc's JSON output needs"
    exit 0
fi
if [ "$(cargo public-api --version 2>/dev/null)" != "cargo-public-api $CARGO_PUBLIC_API_VERSION" ]; then
    cargo install --locked cargo-public-api --version "$CARGO_PUBLIC_API_VERSION"
fi

# Its own target directory: the nightly builds neither wait for nor disturb the stable ones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/public-api"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# listing NAME CARGO-FEATURE-FLAGS…: writes $tmp/NAME.
listing() {
    local name="$1"
    shift
    if ! cargo +nightly public-api -p hotmod --simplified --color never "$@" >"$tmp/$name.raw" 2>"$tmp/$name.log"; then
        cat "$tmp/$name.log" >&2
        echo "error: cargo public-api $* failed (a nightly newer than cargo-public-api $CARGO_PUBLIC_API_VERSION reads? see CARGO_PUBLIC_API_VERSION in $0)" >&2
        exit 1
    fi
    grep -Ev '^impl !?core::marker::(Freeze|UnsafeUnpin) for ' "$tmp/$name.raw" >"$tmp/$name" || true
}

listing public-api.txt
listing public-api-static.txt --no-default-features
listing public-api-state.txt --features state

status=0
for name in public-api.txt public-api-static.txt public-api-state.txt; do
    if $bless; then
        cp "$tmp/$name" "docs/$name"
        echo "blessed docs/$name ($(wc -l <"docs/$name") lines)"
    elif ! diff -u --label "docs/$name (blessed)" --label "$name (this tree)" "docs/$name" "$tmp/$name"; then
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo
    echo "The public API differs from docs/public-api*.txt (above: - blessed, + this tree)."
    echo "Undo the change, or list it with its reason in CHANGELOG.md and run: scripts/public-api.sh --bless"
    exit 1
fi
$bless || echo "public API unchanged (docs/public-api.txt, docs/public-api-static.txt, docs/public-api-state.txt)"
