#!/usr/bin/env python
"""Sync-engine benchmark: xos-runtime and the original XOS synchronizer on the same workload.

Workload (the one of ../shared/baseline/README.md): K models BenchM0..BenchM{K-1} in a `chain`
(BenchM{i} -> BenchM{i-1}) or a `tree` (BenchM{i} -> BenchM{(i-1)//2}); N objects in groups of
one object per model, each linking to its group's object of the parent model; one sync step
per model whose `sync_record` records the call and sleeps `--sleep-ms` (0 = trivial, 5 = stands
for a REST call).

xos-runtime runs end to end through the host: the config is loaded, plugins are discovered
from `steps_dir`, the store is a real SQLite file, and `Runtime.run_until_idle()` (what
`xos-runtime run --until-idle` calls) syncs everything, writing every outcome back. Start-up
is reported apart. Each case runs in a fresh process so that its peak memory is its own.

The latency case runs the engine as `xos-runtime run` does (woken by store notifications)
while another process creates objects at a steady rate, and reports the time from an
object's save to the start of its `sync_record`.

The original keeps its objects in an in-memory mock and persists nothing; xos-runtime
writes every outcome to the store. The ratio is printed with that caveat.

Usage:
  python benchmarks/bench_sync.py                       # default cases, baseline if set up
  python benchmarks/bench_sync.py --baseline setup      # run ../shared/baseline/setup.sh first
  python benchmarks/bench_sync.py --baseline-n 10000    # also the original at N=10,000 (~13 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE.parent.parent / "shared" / "baseline"
BASE_PY = Path(os.environ.get("XOSBASE", "/tmp/xosbase")) / "venv" / "bin" / "python"


def parent_of(i: int, shape: str) -> int | None:
    if i == 0 or shape == "flat":
        return None
    return i - 1 if shape == "chain" else (i - 1) // 2


def write_plugin(root: Path, k: int, shape: str, sleep_ms: float, workers: int) -> Path:
    """The models, the steps and the config of one case, as a user would write them."""
    (root / "models").mkdir()
    (root / "steps").mkdir()
    lines = []
    for i in range(k):
        p = parent_of(i, shape)
        link = (
            f"    required manytoone parent->BenchM{p}:children{i} = 2;\n" if p is not None else ""
        )
        lines.append(f"message BenchM{i} (XOSBase) {{\n    required string name = 1;\n{link}}}\n")
    (root / "models" / "bench.xproto").write_text("\n".join(lines))
    steps = textwrap.dedent(f"""
        import time
        from xos_runtime import SyncStep

        CALLS = []  # (model index, id, start, end, created)
        SLEEP = {sleep_ms} / 1000.0

        class _Bench(SyncStep):
            index = 0

            def sync_record(self, obj):
                start = time.time()
                if SLEEP:
                    time.sleep(SLEEP)
                CALLS.append((self.index, obj.id, obj.parent_id if self.index else None,
                              start, time.time(), obj.created))

            def delete_record(self, obj):
                self.sync_record(obj)
        """)
    for i in range(k):
        steps += f"\nclass SyncBenchM{i}(_Bench):\n    observes = 'BenchM{i}'\n    index = {i}\n"
    (root / "steps" / "bench_steps.py").write_text(steps)
    config = root / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        name: bench
        accessor: {{endpoint: "sqlite:///store.db"}}
        models_dir: models
        steps_dir: steps
        sync: {{workers: {workers}, poll_interval: 1.0}}
        logging: {{level: WARNING}}
        plugins: {{disabled: [xos-runtime-demo]}}
        """)
    )
    return config


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def steps_module():
    return next(m for name, m in sys.modules.items() if name.endswith(".bench_steps"))


def populate(rt, n: int, k: int, shape: str) -> list:
    classes = [rt.accessor.get_model_class(f"BenchM{i}") for i in range(k)]
    objs = []
    g = 0
    while len(objs) < n:
        group: dict[int, object] = {}
        for i in range(k):
            if len(objs) >= n:
                break
            p = parent_of(i, shape)
            fields = {"name": f"g{g}-m{i}"}
            if p is not None:
                fields["parent"] = group[p]
            group[i] = classes[i].objects.create(**fields)
            objs.append(group[i])
        g += 1
    return objs


def verify(calls: list, n: int) -> list[str]:
    """Every object synced once, each after its parent finished."""
    problems = []
    ends = {(c[0], c[1]): c[4] for c in calls}
    if len(calls) != n or len(ends) != n:
        problems.append(f"{len(calls)} calls for {n} objects ({len(ends)} distinct)")
    return problems


def verify_order(calls: list, shape: str, deletion: bool) -> list[str]:
    by_key = {(c[0], c[1]): c for c in calls}
    bad = 0
    for idx, _oid, parent_id, start, end, _created in calls:
        p = parent_of(idx, shape)
        if p is None or parent_id is None:
            continue
        parent = by_key.get((p, parent_id))
        if parent is None:
            continue
        if (deletion and not end <= parent[3]) or (not deletion and not parent[4] <= start):
            bad += 1
    return [f"{bad} objects out of dependency order"] if bad else []


def case_sync(args: argparse.Namespace) -> dict:
    from xos_runtime.host import Runtime

    root = Path(tempfile.mkdtemp(prefix="xrt-bench-"))
    config = write_plugin(root, args.k, args.shape, args.sleep_ms, args.workers)
    t0 = time.perf_counter()
    rt = Runtime.load(str(config))
    rt.engines()
    startup = time.perf_counter() - t0
    populate(rt, args.n, args.k, args.shape)
    calls = steps_module().CALLS
    t1 = time.perf_counter()
    summary = rt.run_until_idle()
    wall = time.perf_counter() - t1
    problems = verify(calls, args.n) + verify_order(calls, args.shape, False)
    left = len(rt.accessor.fetch_pending([f"BenchM{i}" for i in range(args.k)]))
    if left or summary.in_error:
        problems.append(f"{left} objects still pending, {summary.in_error} in error")
    busy = sum(c[4] - c[3] for c in calls)
    result = {
        "system": "xos-runtime",
        "phase": "sync",
        "n": args.n,
        "k": args.k,
        "shape": args.shape,
        "sleep_ms": args.sleep_ms,
        "workers": args.workers,
        "startup_s": startup,
        "wall_s": wall,
        "objects_per_s": args.n / wall,
        "overhead_us": max(0.0, wall - busy / args.workers) / args.n * 1e6,
        "pool_bound_per_s": (args.workers / (args.sleep_ms / 1000.0)) if args.sleep_ms else None,
        "passes": summary.passes,
        "problems": problems,
    }
    if args.delete:
        calls.clear()
        roots = rt.accessor.get_model_class("BenchM0")
        for obj in roots.objects.all():
            obj.delete()  # cascades through the required links
        t2 = time.perf_counter()
        rt.run_until_idle()
        dwall = time.perf_counter() - t2
        dproblems = verify(calls, args.n) + verify_order(calls, args.shape, True)
        result.update(
            delete_wall_s=dwall, delete_objects_per_s=args.n / dwall, delete_problems=dproblems
        )
    result["peak_rss_mib"] = peak_rss_mib()
    rt.close()
    return result


WRITER = """
import sys, time
from xos_runtime import connect
acc = connect(sys.argv[1]); n = int(sys.argv[2]); duration = float(sys.argv[3])
cls = acc.get_model_class("BenchM0")
print("ready", flush=True); sys.stdin.readline()
t0 = time.time()
for j in range(n):
    d = t0 + j * duration / n - time.time()
    if d > 0:
        time.sleep(d)
    cls.objects.create(name="loop%d" % j)
"""


def case_latency(args: argparse.Namespace) -> dict:
    import threading

    from xos_runtime.host import Runtime

    root = Path(tempfile.mkdtemp(prefix="xrt-bench-"))
    config = write_plugin(root, args.k, args.shape, args.sleep_ms, args.workers)
    rt = Runtime.load(str(config))
    engine = rt.engines()[0]
    calls = steps_module().CALLS
    thread = threading.Thread(target=engine.serve, daemon=True)
    thread.start()
    url = f"sqlite:///{root}/store.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(args.n), str(args.duration)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdin is not None
    writer.stdout.readline()
    t0 = time.time()
    writer.stdin.write("go\n")
    writer.stdin.flush()
    writer.wait()
    deadline = time.time() + 30
    while len(calls) < args.n and time.time() < deadline:
        time.sleep(0.01)
    wall = time.time() - t0
    engine.stop()
    thread.join(10)
    lat = sorted(c[3] - c[5] for c in calls)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    result = {
        "system": "xos-runtime",
        "phase": "loop",
        "n": args.n,
        "k": args.k,
        "sleep_ms": args.sleep_ms,
        "duration_s": args.duration,
        "wall_s": wall,
        "synced": len(calls),
        "latency_p50_s": statistics.median(lat),
        "latency_p99_s": q[98],
        "latency_max_s": lat[-1],
        "peak_rss_mib": peak_rss_mib(),
        "problems": [] if len(calls) == args.n else [f"{len(calls)} of {args.n} synced"],
    }
    rt.close()
    return result


# --------------------------------------------------------------------------- the driver


def run_child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"benchmark case failed: {' '.join(argv)}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_baseline(argv: list[str]) -> dict | None:
    if not BASE_PY.exists():
        return None
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        out = subprocess.run(
            [str(BASE_PY), str(BASELINE / "bench_xos.py"), "--json", f.name, *argv],
            capture_output=True,
            text=True,
        )
        records = [json.loads(line) for line in Path(f.name).read_text().splitlines() if line]
    if out.returncode or not records:
        sys.stderr.write(out.stderr[-2000:])
        return None
    return {r.get("phase", "sync"): r for r in records}  # type: ignore[return-value]


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}/s"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--case", choices=["sync", "latency"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--shape", default="chain")
    ap.add_argument("--sleep-ms", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--delete", action="store_true")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--sizes", default="1000,10000", help="N of the sync cases")
    ap.add_argument("--baseline", choices=["auto", "skip", "setup"], default="auto")
    ap.add_argument(
        "--baseline-n",
        default="1000",
        help="N at which the original runs too (10000 takes ~13 minutes)",
    )
    ap.add_argument("--json", help="append every result as a JSON line to this file")
    args = ap.parse_args()

    if args.case == "sync":
        print(json.dumps(case_sync(args)))
        return
    if args.case == "latency":
        print(json.dumps(case_latency(args)))
        return

    if args.baseline == "setup" and not BASE_PY.exists():
        subprocess.run(["bash", str(BASELINE / "setup.sh")], check=True)
    use_baseline = args.baseline != "skip" and BASE_PY.exists()
    if args.baseline != "skip" and not use_baseline:
        print(
            "# the original is not set up: run with --baseline setup (or "
            "../shared/baseline/setup.sh) to print both systems",
            file=sys.stderr,
        )
    baseline_ns = {int(x) for x in args.baseline_n.split(",")}
    sizes = [int(x) for x in args.sizes.split(",")]
    cases: list[tuple[str, list[str]]] = []
    for n in sizes:
        cases.append(("sync", ["--n", str(n), "--shape", "chain", "--sleep-ms", "0", "--delete"]))
    cases.append(
        ("sync", ["--n", str(max(sizes)), "--shape", "tree", "--k", "7", "--sleep-ms", "0"])
    )
    cases.append(("sync", ["--n", str(min(sizes)), "--shape", "chain", "--sleep-ms", "5"]))
    cases.append(("sync", ["--n", str(max(sizes)), "--shape", "chain", "--sleep-ms", "5"]))
    cases.append(("latency", ["--n", "200", "--duration", "5", "--k", "1", "--shape", "flat"]))

    records = []
    print(f"{'case':44} {'xos-runtime':>14} {'original':>14} {'ratio':>8}")
    for kind, argv in cases:
        common = [*argv, "--workers", str(args.workers)]
        ours = run_child(["--case", kind, *common])
        records.append(ours)
        n = ours["n"]
        base = None
        if use_baseline and (n in baseline_ns or kind == "latency"):
            bargv = [a for a in argv if a != "--delete"]
            if kind == "latency":
                bargv = ["--mode", "loop", "--n", "200", "--k", "1", "--duration", "5"]
            else:
                bargv = ["--mode", "sync", *bargv] + (["--delete"] if "--delete" in argv else [])
            base = run_baseline(bargv)
            if base:
                records.extend({"system": "original", **r} for r in base.values())
        if kind == "latency":
            label = f"save->sync latency p50 (N={n}, {ours['duration_s']:g}s)"
            b = base.get("loop", {}).get("latency_p50_s") if base else None
            ratio = f"{b / ours['latency_p50_s']:.0f}x" if b else "-"
            print(
                f"{label:44} {ours['latency_p50_s'] * 1000:>11.1f} ms "
                f"{'-' if b is None else f'{b * 1000:,.0f} ms':>14} {ratio:>8}"
            )
            print(
                f"{'':44} p99 {ours['latency_p99_s'] * 1000:.1f} ms, max "
                f"{ours['latency_max_s'] * 1000:.1f} ms, peak {ours['peak_rss_mib']:.0f} MiB"
            )
        else:
            label = (
                f"sync N={n} K={ours['k']} {ours['shape']} {ours['sleep_ms']:g}ms "
                f"W={ours['workers']}"
            )
            b = base.get("sync", {}).get("objects_per_s") if base else None
            ratio = f"{ours['objects_per_s'] / b:.0f}x" if b else "-"
            print(f"{label:44} {fmt_rate(ours['objects_per_s']):>14} {fmt_rate(b):>14} {ratio:>8}")
            detail = (
                f"overhead {ours['overhead_us']:.0f} us/object, start-up "
                f"{ours['startup_s']:.2f} s, peak {ours['peak_rss_mib']:.0f} MiB, "
                f"{ours['passes']} passes"
            )
            if ours.get("pool_bound_per_s"):
                detail += (
                    f", {ours['objects_per_s'] / ours['pool_bound_per_s']:.0%} of the "
                    f"pool bound {ours['pool_bound_per_s']:,.0f}/s"
                )
            print(f"{'':44} {detail}")
            if "delete_objects_per_s" in ours:
                bd = base.get("delete", {}).get("objects_per_s") if base else None
                dratio = f"{ours['delete_objects_per_s'] / bd:.0f}x" if bd else "-"
                print(
                    f"{'  deletion pass':44} {fmt_rate(ours['delete_objects_per_s']):>14} "
                    f"{fmt_rate(bd):>14} {dratio:>8}"
                )
        for p in ours.get("problems", []) + ours.get("delete_problems", []):
            print(f"{'':44} PROBLEM: {p}")
    print(
        "# the original keeps objects in an in-memory mock and persists nothing; "
        "xos-runtime writes every outcome to a SQLite file"
    )
    if args.json:
        with open(args.json, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    if any(
        r.get("problems") or r.get("delete_problems")
        for r in records
        if r.get("system") == "xos-runtime"
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
