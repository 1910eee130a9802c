#!/usr/bin/env bash
# Alternating same-run pairs for the MLP training-step target (issue 2): Adjoint's step
# (`TimeBenchmarks profile-mlp-sgd`, median of 50 steps after 25 warm-up steps), then PyTorch's
# (`peers/pytorch_benchmarks.py`'s `mlp()` step, median of at least 50), two threads each, N times.
# Prints every pair's ratio and the median ratio: on a shared VM both libraries' step times move by
# ±20 % from minute to minute, more than the 5 % margin the target leaves, so one pair proves little.
#
#   Benchmarks/mlp_pairs.sh [path/to/python-with-torch] [pairs, default 10]
set -euo pipefail
cd "$(dirname "$0")"
python="${1:-${PEERS_PYTHON:-python3}}"
pairs="${2:-10}"
swift build -c release --product TimeBenchmarks >/dev/null
ratios=()
for i in $(seq 1 "$pairs"); do
  adjoint=$(.build/release/TimeBenchmarks profile-mlp-sgd | tail -1 | "$python" -c "import json, sys; print(json.load(sys.stdin)['ms_p50'])")
  torch=$(cd peers && "$python" -c "
import torch
torch.set_num_threads(2)
import pytorch_benchmarks, timing
forward, step = pytorch_benchmarks.mlp()
print(timing.median_ms(step, min_runs=50, max_seconds=6))" 2>/dev/null | tail -1)
  ratio=$("$python" -c "print(f'{$adjoint / $torch:.3f}')")
  ratios+=("$ratio")
  printf 'pair %2d: Adjoint %.3f ms, PyTorch %.3f ms, ratio %s\n' "$i" "$adjoint" "$torch" "$ratio"
done
"$python" -c "
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f'median ratio {statistics.median(r):.3f} (target <= 1.05); {sum(x <= 1.05 for x in r)} of {len(r)} pairs at or under 1.05; range {min(r):.3f}-{max(r):.3f}')
" "${ratios[@]}"
