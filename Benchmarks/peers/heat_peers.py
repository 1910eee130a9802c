"""The heat equation of HeatEquation.swift in JAX (jit(grad(scan))) and PyTorch (eager), for the
same run as TimeBenchmarks heat: 10^6 float32 cells, s <- s + a*lap(s) + b*tanh(s), ends held at
zero, loss mean(s^2) after T steps, gradient w.r.t. (a, b). One framework per process, so the peak
RSS printed is its own.

    python heat_peers.py <jax|torch> [steps] [repeats] [cells]
"""
import json, math, resource, sys, time

framework = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
n = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000


def initial():
    import numpy as np
    i = np.arange(n, dtype=np.float64)
    x = i / max(n - 1, 1)
    return (np.sin(np.pi * x) + 0.1 * np.sin(2 * np.pi * i / 64)).astype(np.float32)


times = []
if framework == "jax":
    import os
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2")
    import jax, jax.numpy as jnp
    s0 = jnp.asarray(initial())
    p0 = jnp.asarray([0.25, 0.05], dtype=jnp.float32)

    def step(s, p):
        left = jnp.concatenate([jnp.zeros(1, s.dtype), s[:-1]])
        right = jnp.concatenate([s[1:], jnp.zeros(1, s.dtype)])
        return s + p[0] * (left + right - 2 * s) + p[1] * jnp.tanh(s)

    def loss(p):
        s, _ = jax.lax.scan(lambda s, _: (step(s, p), None), s0, None, length=steps)
        return jnp.mean(s * s)

    f = jax.jit(jax.value_and_grad(loss))
    start = time.perf_counter(); value, g = f(p0); g.block_until_ready(); compile_s = time.perf_counter() - start
    for _ in range(repeats):
        start = time.perf_counter(); value, g = f(p0); g.block_until_ready(); times.append(time.perf_counter() - start)
else:
    import torch
    torch.set_num_threads(2)
    s0 = torch.from_numpy(initial())
    p = torch.tensor([0.25, 0.05], dtype=torch.float32, requires_grad=True)
    zero = torch.zeros(1)
    compile_s = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        s = s0
        for _ in range(steps):
            left = torch.cat([zero, s[:-1]])
            right = torch.cat([s[1:], zero])
            s = s + p[0] * (left + right - 2 * s) + p[1] * torch.tanh(s)
        value = (s * s).mean()
        g, = torch.autograd.grad(value, p)
        times.append(time.perf_counter() - start)
times.sort()
print(json.dumps({"framework": framework, "steps": steps, "cells": n, "ms": times[len(times) // 2] * 1000,
                  "compile_ms": compile_s * 1000, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "loss": float(value), "gradient": [float(x) for x in g]}))
