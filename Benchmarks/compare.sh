#!/usr/bin/env bash
# Side-by-side run: Adjoint's package-benchmark suite and the same workloads in PyTorch and JAX,
# back to back on the same machine, then the ratios the issues set targets on.
#
#   Benchmarks/compare.sh [path/to/python-with-torch]
#
# The Python interpreter defaults to $PEERS_PYTHON or python3; install PyTorch into a virtual
# environment outside the repository (python3 -m venv ~/adjoint-peers && ~/adjoint-peers/bin/pip install torch jax).
# JAX is optional: without it the JAX column is left out.
set -euo pipefail
cd "$(dirname "$0")"
python="${1:-${PEERS_PYTHON:-python3}}"
out="$(mktemp -d)"
swift package --disable-sandbox benchmark --no-progress --format jmh --path "$out" >"$out/adjoint.log" 2>&1 \
  || { cat "$out/adjoint.log"; exit 1; }
"$python" peers/pytorch_benchmarks.py --threads 2 --json "$out/torch.json"
jax=()
if "$python" -c "import jax" 2>/dev/null; then
  "$python" peers/jax_benchmarks.py --threads 2 --json "$out/jax.json"
  jax=("$out/jax.json")
fi
"$python" peers/ratios.py "$out"/*.jmh.json "$out/torch.json" "${jax[@]}"
