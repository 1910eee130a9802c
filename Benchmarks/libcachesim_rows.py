#!/usr/bin/env python3
"""Reference rows from libCacheSim's Python package for policies the shared reference table
(../shared/data/libcachesim-reference.csv) does not list, at that table's traces and sizes.

    python3 -m venv /tmp/lcs && /tmp/lcs/bin/pip install libcachesim
    /tmp/lcs/bin/python Benchmarks/libcachesim_rows.py WTinyLFU
    /tmp/lcs/bin/python Benchmarks/libcachesim_rows.py LRU+BloomFilter   # LRU behind libCacheSim's admissioner

Prints `trace,object_sizes,cache_size,cache_size_unit,policy,miss_ratio,byte_miss_ratio` rows;
Tests/AdjointPoliciesTests/ReferenceTests.swift holds the ones it checks, with the version used.
"""
import csv
import os
import sys

import libcachesim as lcs

policy = sys.argv[1] if len(sys.argv) > 1 else "WTinyLFU"
data = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
rows = {(r["trace"], r["object_sizes"], int(r["cache_size"]), r["cache_size_unit"])
        for r in csv.DictReader(open(os.path.join(data, "libcachesim-reference.csv")))}
print(f"# libcachesim {getattr(lcs, '__version__', '?')}")
print("trace,object_sizes,cache_size,cache_size_unit,policy,miss_ratio,byte_miss_ratio")
for trace, sizes, size, unit in sorted(rows):
    path = next((os.path.join(data, "traces", trace + s) for s in (".oracleGeneral.bin", ".oracleGeneral.bin.zst")
                 if os.path.exists(os.path.join(data, "traces", trace + s))), None)
    if path is None:
        continue
    params = lcs.ReaderInitParam()
    params.ignore_obj_size = sizes == "unit"
    reader = lcs.TraceReader(trace=path, trace_type=lcs.TraceType.ORACLE_GENERAL_TRACE, reader_init_params=params)
    name, _, admission = policy.partition("+")
    extra = {"admissioner": getattr(lcs, admission + "Admissioner")()} if admission else {}
    miss, byte_miss = getattr(lcs, name)(cache_size=size, **extra).process_trace(reader)
    print(f"{trace},{sizes},{size},{unit},{policy},{miss:.4f},{byte_miss:.4f}")
