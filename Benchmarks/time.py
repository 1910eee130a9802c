"""Long-horizon unroll benchmarks, side by side, one configuration per process:

    swift build -c release --product TimeBenchmarks      # in Benchmarks/
    python3 time.py [--python PEERS_PYTHON] [--quick] [--thermal-only] [--chain-steps N] [--out DIR]

1. The thermal gradient at T = 20 and T = 100,000: the compiled adapter (CompiledStep, binomial:32;
   tracing and compiling, done once, timed apart as compile_ms), the same with its arithmetic as
   native code ("native"; also with binomial:1024 at the long horizon — 144 KiB of snapshots — to show
   what a larger snapshot budget buys), the _Differentiation adapter (SwiftADStep,
   binomial:32), the tensor adapter (TensorStep), plain _Differentiation without checkpointing
   (one pullback through the whole loop), and PyTorch eager (peers/thermal_torch.py; skipped
   without a Python that has torch).
2. Memory and time against T for storeAll, uniform and binomial (SwiftADStep), written as
   time-memory.svg.
3. The spring chain (1,000 states) for --chain-steps steps under a 64 MiB snapshot budget.
Prints Markdown tables; writes results.json and the SVG into --out (default: a temporary directory).
"""
import argparse, json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.join(HERE, ".build", "release", "TimeBenchmarks")


def run(*args):
    out = subprocess.run([BINARY, *map(str, args)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def svg(series, path):
    """Two log-log panels (time, peak RSS) against T, one polyline per schedule."""
    import math
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    W, H, M = 900, 380, 60
    panels = [("ms", "time (ms)"), ("peak_rss_kib", "peak RSS (KiB)")]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>']
    pw = (W - 3 * M) / 2
    for i, (key, label) in enumerate(panels):
        x0 = M + i * (pw + M)
        xs = [r["steps"] for rows in series.values() for r in rows]
        ys = [r[key] for rows in series.values() for r in rows]
        lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
        ly0, ly1 = math.log10(min(ys)) - 0.1, math.log10(max(ys)) + 0.1
        def px(x): return x0 + (math.log10(x) - lx0) / (lx1 - lx0) * pw
        def py(y): return H - M - (math.log10(y) - ly0) / (ly1 - ly0) * (H - 2 * M)
        parts.append(f'<rect x="{x0}" y="{M}" width="{pw}" height="{H - 2 * M}" fill="none" stroke="#888"/>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{M - 20}" text-anchor="middle">{label} against steps T (log-log)</text>')
        for e in range(int(math.floor(lx0)), int(math.ceil(lx1)) + 1):
            if lx0 <= e <= lx1:
                parts.append(f'<text x="{px(10 ** e)}" y="{H - M + 16}" text-anchor="middle">1e{e}</text>')
        for e in range(int(math.floor(ly0)), int(math.ceil(ly1)) + 1):
            if ly0 <= e <= ly1:
                parts.append(f'<text x="{x0 - 6}" y="{py(10 ** e) + 4}" text-anchor="end">1e{e}</text>')
        for c, (name, rows) in enumerate(series.items()):
            pts = " ".join(f"{px(r['steps']):.1f},{py(r[key]):.1f}" for r in rows)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colors[c % 4]}" stroke-width="2"/>')
            if i == 0:
                parts.append(f'<text x="{x0 + 8}" y="{M + 16 + 14 * c}" fill="{colors[c % 4]}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=os.environ.get("PEERS_PYTHON", "python3"))
    parser.add_argument("--quick", action="store_true", help="smaller horizons (T up to 10,000)")
    parser.add_argument("--chain-steps", type=int, default=1_000_000)
    parser.add_argument("--thermal-only", action="store_true", help="only the thermal gradient table")
    parser.add_argument("--short-only", action="store_true", help="with --thermal-only: only T = 20")
    parser.add_argument("--sweep-only", action="store_true", help="only the SwiftADStep time and memory sweep (and its SVG)")
    parser.add_argument("--out", default=tempfile.mkdtemp())
    args = parser.parse_args()
    long = 10_000 if args.quick else 100_000
    results = {"thermal": [], "sweep": {}, "chain": None}

    if not args.sweep_only:
        thermal_table(args, long, results)
    if args.thermal_only:
        return
    sweep(args, results)
    if args.sweep_only:
        return

    print(f"\n## Spring chain, {args.chain_steps:,} steps, 64 MiB snapshot budget\n")
    r = run("chain", args.chain_steps, 64)
    results["chain"] = r
    print(json.dumps(r, indent=2))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwrote {args.out}/results.json and {args.out}/time-memory.svg")


def thermal_table(args, long, results):
    print("## Thermal gradient\n")
    print("| T | adapter | schedule | time (ms) | peak RSS (MiB) | loss |")
    print("|---|---|---|---|---|---|")
    for steps in (20,) if args.short_only else (20, long):
        # At T = 20 the adapters also run storeAll: no recomputation, the same work as plain
        # _Differentiation, which isolates the adapters' own overhead.
        # T = 20 takes microseconds to milliseconds: medians of many repeats (PyTorch: 30 after its
        # warm-up), so one scheduling hiccup of this shared VM does not decide the ratio.
        # The compiled adapters take tens of microseconds here: 2,000 repeats (tens of
        # milliseconds) so that a disturbance of a millisecond or two does not move the median.
        short = [run("thermal", "compiled", 20, "storeAll", 2000), run("thermal", "native", 20, "storeAll", 2000),
                 run("thermal", "swiftad", 20, "storeAll", 200)] if steps == 20 else []
        larger = [] if steps == 20 else [dict(run("thermal", "native", steps, "binomial:1024", 3), adapter="native (binomial:1024)")]
        rows = short + larger + [run("thermal", "compiled", steps, "binomial:32", 2000 if steps == 20 else 3),
                run("thermal", "native", steps, "binomial:32", 2000 if steps == 20 else 3),
                run("thermal", "swiftad", steps, "binomial:32", 200 if steps == 20 else 3),
                run("thermal", "tensor", steps, "binomial:32", 200 if steps == 20 else 1),
                run("thermal", "plain", steps, "storeAll", 200 if steps == 20 else 3)]
        try:
            out = subprocess.run([args.python, os.path.join(HERE, "peers", "thermal_torch.py"), "--steps", str(steps),
                                  "--threads", "2", "--repeats", "30" if steps == 20 else "3"],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            print(f"(PyTorch skipped: {error})", file=sys.stderr)
        for r in rows:
            print(f"| {steps:,} | {r['adapter']} | {r.get('schedule', '—')} | {r['ms']:.4f} | {r['peak_rss_kib'] / 1024:.1f} | {r['loss']:.9g} |")
        results["thermal"] += rows
        by = {r["adapter"]: r for r in rows if r.get("schedule") != "storeAll"}
        ratios = [f"compiled/plain = {by['compiled']['ms'] / by['plain']['ms']:.2f}×",
                  f"native/plain = {by['native']['ms'] / by['plain']['ms']:.2f}×",
                  f"swiftad/plain = {by['swiftad']['ms'] / by['plain']['ms']:.2f}×",
                  f"memory plain/swiftad = {by['plain']['peak_rss_kib'] / by['swiftad']['peak_rss_kib']:.1f}×"]
        if "pytorch" in by:
            ratios.append(f"pytorch/compiled = {by['pytorch']['ms'] / by['compiled']['ms']:.1f}×")
            ratios.append(f"pytorch/native = {by['pytorch']['ms'] / by['native']['ms']:.1f}×")
            if "native (binomial:1024)" in by:
                ratios.append(f"pytorch/native (binomial:1024) = {by['pytorch']['ms'] / by['native (binomial:1024)']['ms']:.1f}×")
            ratios.append(f"pytorch/swiftad = {by['pytorch']['ms'] / by['swiftad']['ms']:.1f}×")
            ratios.append(f"pytorch/tensor = {by['pytorch']['ms'] / by['tensor']['ms']:.1f}×")
        for r in short:
            ratios.append(f"{r['adapter']} storeAll/plain = {r['ms'] / by['plain']['ms']:.2f}×")
            if "pytorch" in by:
                ratios.append(f"pytorch/{r['adapter']} storeAll = {by['pytorch']['ms'] / r['ms']:.1f}×")
        print(f"\nT = {steps:,}: " + ", ".join(ratios) + "\n")



def sweep(args, results):
    print("## Memory and time against T (SwiftADStep)\n")
    print("| schedule | T | time (ms) | peak RSS (MiB) | forward steps |")
    print("|---|---|---|---|---|")
    horizons = [100, 1_000, 10_000] + ([] if args.quick else [100_000])
    for schedule in ("storeAll", "uniform:100", "binomial:32"):
        rows = []
        for steps in horizons:
            r = run("thermal", "swiftad", steps, schedule, 3 if steps <= 10_000 else 1)
            rows.append(r)
            print(f"| {schedule} | {steps:,} | {r['ms']:.2f} | {r['peak_rss_kib'] / 1024:.1f} | {r.get('forward_steps', 0):,} |")
        results["sweep"][schedule] = rows
    svg(results["sweep"], os.path.join(args.out, "time-memory.svg"))


if __name__ == "__main__":
    main()
