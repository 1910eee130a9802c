#!/usr/bin/env bash
# The distributed benchmarks of Documentation/Benchmarks.md and Distributed.md: the all-reduce of
# 25 MiB of float32 on 1-4 ranks (MPI_Allreduce, Adjoint's checked all-reduce, the reproducible
# sum, interleaved in one job), then one data-parallel MLP step on 2 ranks (gradient alone,
# all-reduce after the backward pass, overlapped). Release build of the repository's `adjoint`.
#
#   Benchmarks/distributed.sh [repeats, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-10}"
swift build -c release --product adjoint >/dev/null
options=(--oversubscribe)
[ "$(id -u)" -eq 0 ] && options+=(--allow-run-as-root)
for ranks in 1 2 3 4; do
  mpirun -np "$ranks" "${options[@]}" .build/release/adjoint distributed bench --megabytes 25 --repeats "$repeats"
done
mpirun -np 2 "${options[@]}" .build/release/adjoint distributed bench --workload ddp --repeats $((2 * repeats))
