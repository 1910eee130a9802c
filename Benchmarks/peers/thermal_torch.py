"""The thermal model of Examples/AdjointExamples/Thermal.swift in PyTorch eager (float64, CPU):
the same equations, 21 log-multiplier parameters, forcing and loss; gradient by one backward pass
through the whole loop (PyTorch keeps every step's graph).

    python thermal_torch.py --steps 20 100000 --threads 2 [--json out.json]
"""
import argparse, json, math, resource, sys, time

import torch

NOMINAL = [1.256e6, 6000, 55, 1.0, 3, 18, 0.08, 4186, 16744, 60, 2.0e6, 20, 50, 5,
           10, 1.0e6, 150, 2, 5, 1500, 300]


def gradient(steps, segments=8, dt=30.0, target=23.0):
    u = torch.zeros(21, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(NOMINAL, dtype=torch.float64) * torch.exp(u)
    q = [p[i:i + 1] for i in range(21)]
    tank = torch.full((1,), 50.0, dtype=torch.float64)
    pipe = torch.full((segments,), 20.0, dtype=torch.float64)
    slab = torch.full((segments,), 19.0, dtype=torch.float64)
    room = torch.full((1,), 19.0, dtype=torch.float64)
    n = segments
    for k in range(steps):
        phase = 2 * math.pi * k * dt / 86400
        cosine, daylight = math.cos(phase), max(0.0, math.sin(phase))
        heat = q[1] * torch.sigmoid(q[3] * (q[2] - tank))
        flow = q[6] * q[7]
        upstream = torch.cat([tank, pipe[:n - 1]])
        to_slab = q[9] * (pipe - slab)
        new_pipe = pipe + dt * ((flow * (upstream - pipe) - to_slab) / q[8])
        left = torch.cat([slab[0:1], slab[:n - 1]])
        right = torch.cat([slab[1:], slab[n - 1:n]])
        lateral = q[11] * (left + right - 2 * slab)
        to_room = q[12] * (slab - room)
        to_ground = q[13] * (slab - q[14])
        new_slab = slab + dt * ((to_slab + lateral - to_room - to_ground) / q[10])
        new_tank = tank + dt * ((heat - flow * (tank - pipe[n - 1:n]) - q[4] * (tank - q[5])) / q[0])
        outdoor = q[17] + q[18] * cosine
        gains = q[19] * daylight + q[20]
        new_room = room + dt * ((to_room.sum() - q[16] * (room - outdoor) + gains) / q[15])
        tank, pipe, slab, room = new_tank, new_pipe, new_slab, new_room
    loss = (slab.mean() - target) ** 2
    loss.backward()
    return loss.item(), u.grad.norm().item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 100000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for steps in args.steps:
        gradient(min(steps, 20))  # warm-up
        times = []
        repeats = args.repeats if steps <= 10000 else 1
        for _ in range(repeats):
            t0 = time.perf_counter()
            loss, norm = gradient(steps)
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        row = {"model": "thermal", "adapter": "pytorch", "steps": steps, "ms": times[len(times) // 2], "loss": loss,
               "gradient_norm": norm, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "torch": torch.__version__, "repeats": repeats}
        print(json.dumps(row, sort_keys=True))
        rows.append(row)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
