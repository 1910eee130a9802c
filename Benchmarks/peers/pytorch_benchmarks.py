"""The Adjoint benchmark workloads in PyTorch eager (CPU), for side-by-side ratios.

Usage: python pytorch_benchmarks.py [--threads 2] [--json out.json]
Prints the median time of each workload in milliseconds.
"""
import argparse
import torch
from timing import median_ms, report


def scalar_chain():
    a = torch.tensor(0.9999, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.001, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(20_000):
        x = x * a + b
    x.backward()
    return a.grad, b.grad


def mlp():
    g = torch.Generator().manual_seed(2026)
    def layer(fan_in, fan_out):
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        return (torch.rand(fan_in, fan_out, generator=g) * 2 * bound - bound).requires_grad_()
    params = [layer(784, 512), torch.zeros(512, requires_grad=True), layer(512, 512),
              torch.zeros(512, requires_grad=True), layer(512, 10), torch.zeros(10, requires_grad=True)]
    x = torch.rand(256, 784, generator=g)
    labels = (torch.rand(256, generator=g) * 10).long()

    def loss():
        w1, b1, w2, b2, w3, b3 = params
        h1 = torch.relu(x @ w1 + b1)
        h2 = torch.relu(h1 @ w2 + b2)
        return torch.nn.functional.cross_entropy(h2 @ w3 + b3, labels)

    def forward():
        with torch.no_grad():
            return loss()

    def step():
        for p in params:
            p.grad = None
        value = loss()
        value.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-0.01)
        return value
    return forward, step


def matmul():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(1024, 1024, generator=g), torch.rand(1024, 1024, generator=g)
    return lambda: a @ b


def rosenbrock_workloads():
    g = torch.Generator().manual_seed(10)
    x = torch.rand(1_000_000, dtype=torch.float64, generator=g) * 2 - 1
    v = torch.rand(1_000_000, dtype=torch.float64, generator=g) * 2 - 1

    def rosen(x):
        head, tail = x[:-1], x[1:]
        a, b = tail - head * head, 1 - head
        return (a * a * 100 + b * b).sum()

    def eager_grad():
        xx = x.detach().requires_grad_()
        rosen(xx).backward()
        return xx.grad

    grad = torch.func.grad(rosen)
    return {
        "Rosenbrock 1e6 f64 gradient (eager)": eager_grad,
        "Rosenbrock 1e6 f64 gradient (torch.func)": lambda: grad(x),
        "Rosenbrock 1e6 f64 HVP (torch.func fwd-over-rev)": lambda: torch.func.jvp(grad, (x,), (v,))[1],
    }


def jacobian_workloads():
    g = torch.Generator().manual_seed(12)
    width, bound = 100, 0.1
    w1, b1, w2, b2 = [(torch.rand(*s, dtype=torch.float64, generator=g) * 2 - 1) * bound
                      for s in [(width, width), (width,), (width, width), (width,)]]
    x = torch.rand(width, dtype=torch.float64, generator=g) * 2 - 1

    def mlp(x):
        return w2 @ torch.tanh(w1 @ x + b1) + b2

    a = (torch.rand(200, 1000, dtype=torch.float64, generator=g) * 2 - 1) * 0.05
    y = torch.rand(1000, dtype=torch.float64, generator=g) * 2 - 1

    def regression(x):
        return torch.nn.functional.softplus(a @ x).sum() + (x * x).sum() * 0.5

    grad = torch.func.grad(regression)
    identity = torch.eye(1000, dtype=torch.float64)

    def hvps():
        return torch.stack([torch.func.jvp(grad, (y,), (identity[j],))[1] for j in range(1000)], dim=1)

    # Per-example gradients: 256 examples of 64 features through tanh(W1 x + b1) · w2, squared error.
    pw1 = (torch.rand(128, 64, dtype=torch.float64, generator=g) * 2 - 1) * 0.1
    pb1 = (torch.rand(128, 1, dtype=torch.float64, generator=g) * 2 - 1) * 0.1
    pw2 = (torch.rand(1, 128, dtype=torch.float64, generator=g) * 2 - 1) * 0.1
    xs = torch.rand(256, 64, 1, dtype=torch.float64, generator=g) * 2 - 1
    ts = torch.rand(256, 1, 1, dtype=torch.float64, generator=g) * 2 - 1

    def example_loss(params, x, t):
        w1, b1, w2 = params
        return ((w2 @ torch.tanh(w1 @ x + b1) - t) ** 2).sum()

    per_example = torch.func.vmap(torch.func.grad(example_loss), in_dims=(None, 0, 0))

    return {
        "per-example gradients 256 x (64-128-1) f64 (vmap grad)": lambda: per_example((pw1, pb1, pw2), xs, ts),
        "MLP 100-100-100 f64 Jacobian forward (jacfwd)": lambda: torch.func.jacfwd(mlp)(x),
        "MLP 100-100-100 f64 Jacobian reverse (jacrev)": lambda: torch.func.jacrev(mlp)(x),
        "Hessian 1000 params full (torch.func.hessian)": lambda: torch.func.hessian(regression)(y),
        "Hessian 1000 params by 1000 HVPs (loop)": hvps,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    forward, step = mlp()
    results = {
        "scalar chain 2×20000 f64 fwd+bwd": median_ms(scalar_chain, min_runs=5),
        "MLP 784-512-512-10 b256 f32 forward": median_ms(forward, min_runs=5),
        "MLP 784-512-512-10 b256 f32 train step": median_ms(step, min_runs=5),
        "matmul 1024³ f32": median_ms(matmul(), min_runs=5),
    }
    for name, fn in {**rosenbrock_workloads(), **jacobian_workloads()}.items():
        results[name] = median_ms(fn, min_runs=3, max_seconds=3.0 if "1000 HVPs" not in name else 1.0)
    report(results, library="torch", version=torch.__version__, threads=args.threads, json_path=args.json)


if __name__ == "__main__":
    main()
