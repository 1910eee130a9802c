#!/usr/bin/env bash
# Trains the learned eviction policy with each method on each workload and prints its miss ratio
# next to LRU and Belady (Documentation/Caching.md records the output). Run from the repository root
# after `swift build -c release --product adjoint`; the traces come from ../shared/data/traces.
set -euo pipefail
adjoint=.build/release/adjoint
out=${1:-/tmp/adjoint-cache-methods}
mkdir -p "$out"
traces=(synthetic ../shared/data/traces/web12.oracleGeneral.bin.zst ../shared/data/traces/lirs-sprite.oracleGeneral.bin.zst
        ../shared/data/traces/cloudPhysicsIO.oracleGeneral.bin)
for trace in "${traces[@]}"; do
  for method in imitation relaxed straightThrough scoreFunction; do
    name=$(basename "$trace" | cut -d. -f1)
    args=(--cache-size 10% --rounds 4 --method "$method" --model "$out/$name-$method.safetensors"
          --checkpoint-directory "$out/$name-$method.checkpoints" --quiet)
    [ "$trace" != synthetic ] && args+=(--trace "$trace")
    rm -rf "$out/$name-$method.checkpoints"
    start=$(date +%s.%N)
    line=$("$adjoint" cache train "${args[@]}" | tail -1)
    end=$(date +%s.%N)
    printf '%s %s %.1fs: %s\n' "$name" "$method" "$(echo "$end - $start" | bc)" "$line"
  done
done
