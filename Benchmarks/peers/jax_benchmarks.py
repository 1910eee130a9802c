"""The forward-mode and second-order workloads in JAX (jit, CPU), for side-by-side ratios.

Usage: python jax_benchmarks.py [--threads 2] [--json out.json]
Prints the median time of each workload in milliseconds (compilation excluded: each function is
called once before timing).
"""
import argparse, os, sys
from timing import median_ms, report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    # XLA's CPU thread pool: restrict it before jax is imported.
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'} "
                               f"intra_op_parallelism_threads={args.threads}")
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")

    k = jax.random.split(jax.random.PRNGKey(10), 8)
    x = jax.random.uniform(k[0], (1_000_000,), jnp.float64, -1, 1)
    v = jax.random.uniform(k[1], (1_000_000,), jnp.float64, -1, 1)

    def rosen(x):
        head, tail = x[:-1], x[1:]
        a, b = tail - head * head, 1 - head
        return jnp.sum(a * a * 100 + b * b)

    grad = jax.jit(jax.grad(rosen))
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(rosen), (x,), (v,))[1])

    width, bound = 100, 0.1
    w1 = jax.random.uniform(k[2], (width, width), jnp.float64, -bound, bound)
    b1 = jax.random.uniform(k[3], (width,), jnp.float64, -bound, bound)
    w2 = jax.random.uniform(k[4], (width, width), jnp.float64, -bound, bound)
    b2 = jax.random.uniform(k[5], (width,), jnp.float64, -bound, bound)
    xm = jax.random.uniform(k[6], (width,), jnp.float64, -1, 1)

    def mlp(x):
        return w2 @ jnp.tanh(w1 @ x + b1) + b2

    a = jax.random.uniform(k[7], (200, 1000), jnp.float64, -0.05, 0.05)
    y = jax.random.uniform(k[0], (1000,), jnp.float64, -1, 1)

    def regression(x):
        return jnp.sum(jax.nn.softplus(a @ x)) + jnp.sum(x * x) * 0.5

    jacfwd, jacrev = jax.jit(jax.jacfwd(mlp)), jax.jit(jax.jacrev(mlp))
    hessian = jax.jit(jax.hessian(regression))
    one_hvp = jax.jit(lambda x, d: jax.jvp(jax.grad(regression), (x,), (d,))[1])
    identity = jnp.eye(1000, dtype=jnp.float64)

    def hvps():
        return jnp.stack([one_hvp(y, identity[j]) for j in range(1000)], axis=1).block_until_ready()

    # Per-example gradients: 256 examples of 64 features through tanh(W1 x + b1) · w2, squared error.
    pk = jax.random.split(jax.random.PRNGKey(14), 5)
    params = (jax.random.uniform(pk[0], (128, 64), jnp.float64, -0.1, 0.1),
              jax.random.uniform(pk[1], (128, 1), jnp.float64, -0.1, 0.1),
              jax.random.uniform(pk[2], (1, 128), jnp.float64, -0.1, 0.1))
    xs = jax.random.uniform(pk[3], (256, 64, 1), jnp.float64, -1, 1)
    ts = jax.random.uniform(pk[4], (256, 1, 1), jnp.float64, -1, 1)

    def example_loss(params, x, t):
        w1, b1, w2 = params
        return jnp.sum((w2 @ jnp.tanh(w1 @ x + b1) - t) ** 2)

    per_example = jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))

    results = {
        "per-example gradients 256 x (64-128-1) f64 (jit vmap grad)": lambda: jax.block_until_ready(per_example(params, xs, ts)),
        "Rosenbrock 1e6 f64 gradient (jit)": lambda: grad(x).block_until_ready(),
        "Rosenbrock 1e6 f64 HVP (jit fwd-over-rev)": lambda: hvp(x, v).block_until_ready(),
        "MLP 100-100-100 f64 Jacobian forward (jit jacfwd)": lambda: jacfwd(xm).block_until_ready(),
        "MLP 100-100-100 f64 Jacobian reverse (jit jacrev)": lambda: jacrev(xm).block_until_ready(),
        "Hessian 1000 params full (jit hessian)": lambda: hessian(y).block_until_ready(),
        "Hessian 1000 params by 1000 HVPs (jit hvp, loop)": hvps,
    }
    results = {name: median_ms(fn, max_seconds=1.0 if "1000 HVPs" in name else 3.0) for name, fn in results.items()}
    report(results, library="jax", version=jax.__version__, threads=args.threads, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
