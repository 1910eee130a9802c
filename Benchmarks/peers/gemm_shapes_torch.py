"""The MLP training step's large products one by one in PyTorch (compare with
`TimeBenchmarks gemm-shapes`): median milliseconds and GFLOP/s, 2 threads.

    python gemm_shapes_torch.py
"""
import time

import torch

torch.set_num_threads(2)


def median_seconds(f, runs=40):
    for _ in range(5):
        f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


SHAPES = [("x·W1", (256, 784), (784, 512), False, False), ("h1·W2", (256, 512), (512, 512), False, False),
          ("g2·W2ᵀ", (256, 512), (512, 512), False, True), ("h1ᵀ·g2", (256, 512), (256, 512), True, False),
          ("xᵀ·g1", (256, 784), (256, 512), True, False)]

for name, a_shape, b_shape, ta, tb in SHAPES:
    a, b = torch.rand(a_shape), torch.rand(b_shape)
    seconds = median_seconds(lambda: (a.t() if ta else a) @ (b.t() if tb else b))
    m, k = (a_shape[1], a_shape[0]) if ta else a_shape
    n = b_shape[0] if tb else b_shape[1]
    print(f"{name}: {seconds * 1e3:.3f} ms, {2 * m * n * k / seconds / 1e9:.1f} GFLOP/s")

# The same eight products back to back, as a training step runs them.
SEQUENCE = [((256, 784), (784, 512), False, False), ((256, 512), (512, 512), False, False), ((256, 512), (512, 10), False, False),
            ((256, 10), (512, 10), False, True), ((256, 512), (256, 10), True, False), ((256, 512), (512, 512), False, True),
            ((256, 512), (256, 512), True, False), ((256, 784), (256, 512), True, False)]
operands = [(torch.rand(a), torch.rand(b), ta, tb) for a, b, ta, tb in SEQUENCE]


def sequence():
    for a, b, ta, tb in operands:
        (a.t() if ta else a) @ (b.t() if tb else b)


print(f"all eight in sequence: {median_seconds(sequence) * 1e3:.3f} ms")
