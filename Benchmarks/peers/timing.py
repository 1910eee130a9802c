"""Timing shared by the peer benchmark scripts: the median of repeated runs after a warm-up."""
import statistics, time


def median_ms(fn, *, min_runs=3, max_seconds=3.0, max_runs=200):
    """Calls `fn` once to warm up (and, for JAX, compile), then at least `min_runs` times and for up
    to `max_seconds`; returns the median wall time in milliseconds."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < max_seconds and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def report(results, *, library, version, threads, json_path=None):
    """Prints `results` (name → median ms) and, given a path, writes them as JSON for ratios.py."""
    for name, ms in results.items():
        print(f"{name:55s} {ms:10.3f} ms")
    if json_path:
        import json
        with open(json_path, "w") as f:
            json.dump({library: version, "threads": threads, "median_ms": results}, f, indent=2)
