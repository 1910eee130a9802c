#!/usr/bin/env python3
"""One learned model per trace at every size, trained on the first half and counted on the second.

Run from the repository root after `swift build -c release --product adjoint`:

    python3 Benchmarks/cache_sizes.py [TRACE ...]      # default: the shared traces and the synthetic workload

For each workload: `adjoint cache compare --cache-sizes 0.1%,1%,5%,10%,20% --training-requests N/2
--count-from N/2` (every cache sees the whole trace; only the second half's misses count), then per
size the learned row against the best heuristic (every policy but Learned, LRB and Belady), LRU,
LRB and Belady, and the share of the gap between the best heuristic and Belady the learned row
closes where that gap is largest. Documentation/Caching.md records the output.
"""
import os
import re
import subprocess
import sys
import time

ADJOINT = ".build/release/adjoint"
SIZES = "0.1%,1%,5%,10%,20%"
data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "traces")
traces = sys.argv[1:] or [os.path.join(data, t) for t in ("web12.oracleGeneral.bin.zst", "lirs-sprite.oracleGeneral.bin.zst",
                                                          "cloudPhysicsIO.oracleGeneral.bin", "scarab-recs.oracleGeneral.bin.zst")] + ["synthetic"]
NOT_HEURISTICS = {"Learned", "LRB", "Belady"}

summary = []
for trace in traces:
    source = [] if trace == "synthetic" else ["--trace", trace]
    if trace != "synthetic" and not os.path.exists(trace):
        print(f"{trace}: absent, skipped")
        continue
    count_out = subprocess.run([ADJOINT, "cache", "simulate", *source, "--policy", "FIFO", "--cache-size", "1"],
                               capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"(\d+) requests", count_out).group(1))
    start = time.time()
    run = subprocess.run([ADJOINT, "cache", "compare", *source, "--cache-sizes", SIZES, "--training-requests", str(n // 2),
                          "--count-from", str(n // 2), "--svg", "/dev/null"], capture_output=True, text=True, check=True)
    out = run.stdout
    deployed = re.findall(r"(\d+): [0-9.]+ \(LRU [0-9.]+, best classical \S+ [0-9.]+, (\S+) deployed here\)", run.stderr)
    seconds = time.time() - start
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 6 and re.fullmatch(r"[0-9.]+", fields[1]):
            rows[fields[0]] = [float(x) for x in fields[1:]]
    heuristics = {k: v for k, v in rows.items() if k not in NOT_HEURISTICS}
    name = os.path.basename(trace).split(".")[0]
    print(f"\n{name}: {n} requests, trained on the first {n // 2}, counted on the rest ({seconds:.0f} s)")
    print(f"{'size':>5} {'Learned':>8} {'best heuristic':>22} {'LRU':>7} {'LRB':>7} {'Belady':>7}")
    wins = not_above_lru = 0
    gaps = []
    for i, size in enumerate(SIZES.split(",")):
        best_name, best = min(((k, v[i]) for k, v in heuristics.items()), key=lambda kv: kv[1])
        learned, lru, belady = rows["Learned"][i], rows["LRU"][i], rows["Belady"][i]
        wins += learned <= best
        not_above_lru += learned <= lru
        gaps.append((best - belady, size, (best - learned) / (best - belady) if best > belady else 0.0))
        mark = "*" if learned <= best else " "
        print(f"{size:>5} {learned:8.4f}{mark} {best_name:>13} {best:8.4f} {lru:7.4f} {rows['LRB'][i]:7.4f} {belady:7.4f}")
    print("classical policies deployed (validation preferred them): " + (", ".join(f"{p} at {c}" for c, p in deployed) or "none"))
    gap, size, closed = max(gaps)
    print(f"learned ≤ best heuristic at {wins}/5 sizes, ≤ LRU at {not_above_lru}/5; at {size} (largest heuristic–Belady gap, {gap:.4f}) "
          f"it closes {100 * closed:.1f} % of it")
    summary.append((name, wins, not_above_lru, closed))

print("\n" + "; ".join(f"{n}: best {w}/5, ≤ LRU {l}/5, gap {100 * c:.1f} %" for n, w, l, c in summary))
