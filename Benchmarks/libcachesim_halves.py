#!/usr/bin/env python3
"""libCacheSim's policies on the second half of each shared trace, the cache warmed by the first,
at the sizes of Benchmarks/cache_sizes.py (0.1/1/5/10/20 % of the footprint, objects counted):
the published learned policies' side of the learned-caching comparison in Documentation/Caching.md.

    python3 -m venv /tmp/lcs && /tmp/lcs/bin/pip install libcachesim
    /tmp/lcs/bin/python Benchmarks/libcachesim_halves.py [POLICY,...] [TRACE ...]   # default: LRU,GLCache,ThreeLCache

Every request goes through the cache (`get`); misses count from request N/2 on, as
`adjoint cache compare --count-from N/2` counts them (the LRU rows check that the two agree).
"""
import os
import sys

import libcachesim as lcs

policies = (sys.argv[1] if len(sys.argv) > 1 else "LRU,GLCache,ThreeLCache").split(",")
data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "traces")
traces = sys.argv[2:] or [os.path.join(data, t) for t in ("web12.oracleGeneral.bin.zst", "lirs-sprite.oracleGeneral.bin.zst",
                                                          "cloudPhysicsIO.oracleGeneral.bin", "scarab-recs.oracleGeneral.bin.zst")]
PERCENT = (0.1, 1, 5, 10, 20)


def reader(path):
    params = lcs.ReaderInitParam()
    params.ignore_obj_size = True
    return lcs.TraceReader(trace=path, trace_type=lcs.TraceType.ORACLE_GENERAL_TRACE, reader_init_params=params)


print(f"# libcachesim {getattr(lcs, '__version__', '?')}")
print("trace,requests,percent,cache_size,policy,second_half_miss_ratio")
for path in traces:
    if not os.path.exists(path):
        print(f"# {path}: absent, skipped")
        continue
    ids = set()
    n = 0
    for req in reader(path):
        ids.add(req.obj_id)
        n += 1
    half = n // 2
    name = os.path.basename(path).split(".")[0]
    for percent in PERCENT:
        size = max(1, int(len(ids) * percent / 100))
        for policy in policies:
            cache = getattr(lcs, policy)(cache_size=size)
            misses = 0
            for i, req in enumerate(reader(path)):
                hit = cache.get(req)
                if i >= half and not hit:
                    misses += 1
            print(f"{name},{n},{percent},{size},{policy},{misses / (n - half):.4f}", flush=True)
