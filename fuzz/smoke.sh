#!/usr/bin/env bash
# Fuzzing smoke pass for CI: builds every cargo-fuzz target and runs each on its seed corpus
# for FUZZ_SECONDS (default 15) seconds. Exits non-zero if any target crashes (panic, failed
# invariant), hangs (an input taking over 5 s) or goes over 2 GiB of memory; the input that
# did it is left in fuzz/artifacts/<target>/.
#
# Works on stable Rust: cargo-fuzz passes -Z flags, which stable rustc accepts with
# RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER=address builds with AddressSanitizer instead of none.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-15}
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo fuzz build --sanitizer "$sanitizer"

# New inputs go to a scratch corpus; the committed seeds in corpus/<target> are only read.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $(cargo fuzz list); do
    echo "== fuzz $target for ${seconds}s"
    mkdir -p "$scratch/$target"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1; then
        tail -n 60 "$scratch/$target.log"
        failed+=("$target")
    else
        grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|Done )' "$scratch/$target.log" || true
    fi
done

if ((${#failed[@]})); then
    echo "fuzz smoke FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz smoke passed: $(cargo fuzz list | wc -l) targets, ${seconds}s each"
