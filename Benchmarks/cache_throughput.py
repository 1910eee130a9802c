#!/usr/bin/env python3
"""Cache simulator throughput, every policy, side by side with libCacheSim (its Python package).

Run from the repository root after `swift build -c release --product adjoint`, with a virtual
environment outside the repository that has libCacheSim:

    python3 -m venv /tmp/lcs && /tmp/lcs/bin/pip install libcachesim
    /tmp/lcs/bin/python Benchmarks/cache_throughput.py [TRACE [CACHE_SIZE [POLICY,...]]]

Both sides read the same oracleGeneral trace from disk (decompressing zstd) and simulate one
policy per run; the time is wall clock for the whole run (libCacheSim: `process_trace`; Adjoint:
what `adjoint cache simulate` reports, reading included). Miss ratios are printed beside each
other as a check that the two simulate the same thing. Documentation/Caching.md records the output.
"""
import re
import subprocess
import sys
import time

import libcachesim as lcs

trace = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/traces/scarab-recs.oracleGeneral.bin.zst"
size = int(sys.argv[2]) if len(sys.argv) > 2 else 2583
policies = [("FIFO", lcs.FIFO), ("LRU", lcs.LRU), ("LFU", lcs.LFU), ("ARC", lcs.ARC), ("2Q", lcs.TwoQ),
            ("S3-FIFO", lcs.S3FIFO), ("SIEVE", lcs.Sieve), ("LeCaR", lcs.LeCaR), ("Cacheus", lcs.Cacheus), ("W-TinyLFU", lcs.WTinyLFU), ("GDSF", lcs.GDSF),
            ("LIRS", lcs.LIRS), ("LHD", lcs.LHD), ("LRB", lcs.LRB), ("Belady", lcs.Belady)]
if len(sys.argv) > 3:
    wanted = sys.argv[3].split(",")
    unknown = [w for w in wanted if w not in dict(policies)]
    if unknown:
        sys.exit(f"unknown policies {unknown}; known: {', '.join(dict(policies))}")
    policies = [p for p in policies if p[0] in wanted]

print(f"{trace}, cache {size} objects")
print(f"{'policy':8} {'Adjoint req/s':>14} {'libCacheSim req/s':>18} {'ratio':>6} {'miss (Adjoint)':>15} {'miss (libCacheSim)':>19}")
for name, cls in policies:
    reader = lcs.TraceReader(trace=trace, trace_type=lcs.TraceType.ORACLE_GENERAL_TRACE)
    start = time.perf_counter()
    miss, _ = cls(cache_size=size).process_trace(reader)
    theirs = reader.get_num_of_req() / (time.perf_counter() - start)
    out = subprocess.run([".build/release/adjoint", "cache", "simulate", "--trace", trace, "--policy", name,
                          "--cache-size", str(size)], capture_output=True, text=True, check=True).stdout
    ours = float(re.search(r"([0-9.]+) requests/s", out).group(1))
    our_miss = float(re.search(r"miss ratio ([0-9.]+)", out).group(1))
    print(f"{name:8} {ours:14,.0f} {theirs:18,.0f} {ours / theirs:6.2f} {our_miss:15.4f} {miss:19.4f}")
