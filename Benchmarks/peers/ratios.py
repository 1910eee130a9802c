"""Prints Adjoint-vs-peer ratios from a package-benchmark JMH export, pytorch_benchmarks.py JSON and
(optionally) jax_benchmarks.py JSON.

Usage: python ratios.py adjoint.jmh.json torch.json [jax.json]
"""
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
    jax = json.load(open(sys.argv[3]))["median_ms"] if len(sys.argv) > 3 else {}
    for k, v in sorted(adj.items()):
        print(f"adjoint  {k:55s} {v:10.3f} ms")
    for k, v in torch.items():
        print(f"pytorch  {k:55s} {v:10.3f} ms")
    for k, v in jax.items():
        print(f"jax      {k:55s} {v:10.3f} ms")

    def find(table, prefix):
        return next(v for k, v in table.items() if k.startswith(prefix))

    chain_a, chain_t = find(adj, "scalar chain"), find(torch, "scalar chain")
    fwd, step = find(adj, "MLP 784-512-512-10 b256 f32 forward"), adj["MLP 784-512-512-10 b256 f32 train step"]
    t_step = find(torch, "MLP 784-512-512-10 b256 f32 train step")
    mm, raw = find(adj, "matmul 1024³ f32 via dispatch"), find(adj, "matmul 1024³ f32 raw")
    print()
    print(f"scalar chain: {chain_a / 40_000 * 1e3:.3f} µs/op (target ≤ 0.5); PyTorch {chain_t / 40_000 * 1e3:.3f} µs/op")
    print(f"MLP step: Adjoint/PyTorch = {step / t_step:.3f} (target ≤ 1.05); (backward+update)/forward = {(step - fwd) / fwd:.2f} (target ≤ 3)")
    if any(k.startswith("MLP 784-512-512-10 b256 f32 train step compiled") for k in adj):
        print(f"MLP step compiled: Adjoint/PyTorch eager = {find(adj, 'MLP 784-512-512-10 b256 f32 train step compiled') / t_step:.3f} (target ≤ 0.9)")
    if any(k.startswith("Rosenbrock") for k in adj):
        g, h = find(adj, "Rosenbrock 1e6 f64 gradient"), find(adj, "Rosenbrock 1e6 f64 HVP")
        tg, th = find(torch, "Rosenbrock 1e6 f64 gradient (eager)"), find(torch, "Rosenbrock 1e6 f64 HVP")
        tfg = find(torch, "Rosenbrock 1e6 f64 gradient (torch.func)")
        line = (f"Rosenbrock 1e6: HVP/gradient = {h / g:.2f} (target ≤ 2.5); PyTorch {th / tfg:.2f} (torch.func), "
                f"{th / tg:.2f} (vs eager gradient)")
        if jax:
            line += f"; JAX {find(jax, 'Rosenbrock 1e6 f64 HVP') / find(jax, 'Rosenbrock 1e6 f64 gradient'):.2f}"
        print(line)
        print(f"Rosenbrock 1e6 gradient: Adjoint/PyTorch eager = {g / tg:.2f} (target ≤ 1)")
        full, loop = find(adj, "Hessian 1000 params full"), find(adj, "Hessian 1000 params by 1000 HVPs")
        print(f"Hessian 1000 params: full {full:.1f} ms vs 1000 HVPs {loop:.1f} ms ({loop / full:.1f}× slower); "
              f"PyTorch {find(torch, 'Hessian 1000 params full'):.1f} / {find(torch, 'Hessian 1000 params by'):.1f} ms"
              + (f"; JAX {find(jax, 'Hessian 1000 params full'):.1f} / {find(jax, 'Hessian 1000 params by'):.1f} ms" if jax else ""))
        print(f"MLP 100-100-100 Jacobian: forward {find(adj, 'MLP 100-100-100 f64 Jacobian forward'):.3f} ms, "
              f"reverse {find(adj, 'MLP 100-100-100 f64 Jacobian reverse'):.3f} ms, automatic {find(adj, 'MLP 100-100-100 f64 Jacobian automatic'):.3f} ms")
    if any(k.startswith("per-example gradients") for k in adj):
        pe = find(adj, "per-example gradients")
        print(f"per-example gradients (vmap of gradient): {pe:.3f} ms; PyTorch torch.func {find(torch, 'per-example gradients'):.3f} ms"
              + (f"; JAX jit {find(jax, 'per-example gradients'):.3f} ms" if jax else ""))
        if jax:
            print(f"MLP 100-100-100 Jacobian / JAX jit: forward {find(adj, 'MLP 100-100-100 f64 Jacobian forward') / find(jax, 'MLP 100-100-100 f64 Jacobian forward'):.2f}, "
                  f"reverse {find(adj, 'MLP 100-100-100 f64 Jacobian reverse') / find(jax, 'MLP 100-100-100 f64 Jacobian reverse'):.2f} (target ≤ 2); "
                  f"Hessian / JAX jit {find(adj, 'Hessian 1000 params full') / find(jax, 'Hessian 1000 params full'):.2f} (target ≤ 2)")
    print(f"matmul 1024³: dispatch reaches {raw / mm * 100:.1f}% of raw OpenBLAS (target ≥ 90%); {2 * 1024**3 / (mm * 1e-3) / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
