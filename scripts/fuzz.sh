#!/usr/bin/env bash
# Fuzz every wxgate-proto target for SECONDS each (default 30).
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz builds with -Zsanitizer=address, a nightly-only flag. On a stable toolchain
# RUSTC_BOOTSTRAP=1 lets rustc accept it (the sanitizer runtime ships with stable rustc on
# x86_64/aarch64 Linux); if the sanitizer build still fails we fall back to
# `--sanitizer none`, which keeps libFuzzer's coverage guidance and Rust's own panics and
# bounds checks. Seeds in fuzz/seeds/<target> are used alongside the (git-ignored) working
# corpus in fuzz/corpus/<target>; crashes land in fuzz/artifacts/<target>.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -eq 0 ]; then
    echo "usage: $0 [SECONDS]   (positive integer, default 30)" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

SANITIZER=()
echo "==> building fuzz targets (address sanitizer)"
if ! cargo fuzz build; then
    echo "==> sanitizer build failed; falling back to --sanitizer none" >&2
    SANITIZER=(--sanitizer none)
    cargo fuzz build "${SANITIZER[@]}"
fi

failed=()
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "==> fuzzing $target for ${SECONDS_PER_TARGET}s"
    # -timeout: any single input taking over 10 s counts as a failure (parsing must stay
    # linear); -rss_limit_mb bounds memory per run.
    if ! cargo fuzz run "${SANITIZER[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "==> FAILED: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "==> all fuzz targets ran ${SECONDS_PER_TARGET}s without a finding"
