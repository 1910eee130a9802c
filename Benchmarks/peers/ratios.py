"""Prints Adjoint-vs-PyTorch ratios from a package-benchmark JMH export and pytorch_benchmarks.py JSON."""
import json, sys


def adjoint_medians(path):
    """Median wall-clock time in ms per benchmark, from package-benchmark's JMH export."""
    scale = {"ns": 1e-6, "μs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
    out = {}
    for entry in json.load(open(path)):
        name = entry["benchmark"].rsplit(".", 1)[-1].replace("_", " ")
        wall = entry.get("secondaryMetrics", {}).get("Time (wall clock)")
        if wall is None or wall["scoreUnit"] not in scale:
            continue
        out[name] = wall["scorePercentiles"]["50.0"] * scale[wall["scoreUnit"]]
    return out


def main():
    jmh, torch_json = sys.argv[1], sys.argv[2]
    adj = adjoint_medians(jmh)
    torch = json.load(open(torch_json))["median_ms"]
    for k, v in sorted(adj.items()):
        print(f"adjoint  {k:50s} {v:10.3f} ms")
    for k, v in torch.items():
        print(f"pytorch  {k:50s} {v:10.3f} ms")

    def find(table, prefix):
        return next(v for k, v in table.items() if k.startswith(prefix))

    chain_a, chain_t = find(adj, "scalar chain"), find(torch, "scalar chain")
    fwd, step = find(adj, "MLP 784-512-512-10 b256 f32 forward"), find(adj, "MLP 784-512-512-10 b256 f32 train step")
    t_step = find(torch, "MLP 784-512-512-10 b256 f32 train step")
    mm, raw = find(adj, "matmul 1024³ f32 via dispatch"), find(adj, "matmul 1024³ f32 raw")
    print()
    print(f"scalar chain: {chain_a / 40_000 * 1e3:.3f} µs/op (target ≤ 0.5); PyTorch {chain_t / 40_000 * 1e3:.3f} µs/op")
    print(f"MLP step: Adjoint/PyTorch = {step / t_step:.3f} (target ≤ 1.05); (backward+update)/forward = {(step - fwd) / fwd:.2f} (target ≤ 3)")
    print(f"matmul 1024³: dispatch reaches {raw / mm * 100:.1f}% of raw OpenBLAS (target ≥ 90%); {2 * 1024**3 / (mm * 1e-3) / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
