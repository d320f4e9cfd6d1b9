#!/usr/bin/env python
"""The runtime over a core next to the same workload on the local store, in one run.

A core (`xos-runtime core serve`, its own process, on loopback) serves a SQLite store; a
`run` whose `accessor.endpoint` is the core's URL works through it (the remote accessor:
pending reads per step, outcome writes and claims in batches, a lease, the change feed).
Each case runs the same plugin folder twice, once with `accessor: {endpoint:
sqlite:///store.db}` (local) and once with the core's URL (remote), and prints both and
the ratio:

- `sync`:    the K=4 chain workload of `bench_hotpaths.py` (trivial sync steps, N objects
             filled the same way), timed as that script does: the wall time of
             `xos-runtime run --until-idle` on the filled store minus the median of three
             idle runs of the same command on the same store (start-up, reported apart).
             Goal: remote >= 50% of local objects/s. Every run checks from the steps' log
             that each object was synced exactly once.
- `policy`:  the same with one trivial `handle_create` per object (no goal: for comparison).
- `latency`: a long-running `xos-runtime run` (no `--until-idle`) and another process that
             saves objects one at a time at a steady rate (through the same accessor as the
             run: the SQLite file, or the core); the time from an object's save (`created`)
             to the start of its `sync_record`, p50/p90/p99. Goal: p50 < 50 ms remote.

Before each remote run the core is stopped, the filled store put back and the core started
again, so that every run starts from the same pending set on a fresh core; the local and
remote runs of one round alternate in order. The machine is shared: every figure is the
median of `--runs` runs with the range.

Usage:
  python benchmarks/bench_core.py                      # N=20,000, 3 runs, every case
  python benchmarks/bench_core.py --quick              # N=2,000, fewer saves: a smoke run
  python benchmarks/bench_core.py --cases sync --n 50000 --runs 5
  python benchmarks/bench_core.py --cases sync --workers 32   # bigger outcome batches
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_hotpaths import (  # noqa: E402  (this folder: the workload and the timing)
    K,
    Snapshot,
    console_script,
    fill,
    measure,
    spread,
    write_case,
)

USER = "bench"
PASSWORD = "bench-secret"


# -- the core -------------------------------------------------------------------------------


class Core:
    """`xos-runtime core serve` on the store of `root` (its own process, loopback), started
    again on the same port after `stop`; the synchronizer user `bench` is added once."""

    def __init__(self, root: Path):
        self.root = root
        self.config = root / "core.yaml"
        self.config.write_text(
            textwrap.dedent("""
            name: bench-core
            accessor: {endpoint: "sqlite:///store.db"}
            plugins: {enabled: []}
            logging: {level: WARNING}
            """)
        )
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def add_user(self) -> None:
        subprocess.run(
            [console_script(), "core", "user", "add", "--synchronizer", "--password-stdin",
             "-C", str(self.config), USER],
            input=PASSWORD, text=True, capture_output=True, check=True, cwd=self.root,
        )  # fmt: skip

    def start(self) -> str:
        self.starts += 1
        log = open(self.root / f"core-{self.starts}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [console_script(), "core", "serve", "-C", str(self.config), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=self.root,
        )  # fmt: skip
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the core says when it listens
        if not line.startswith("serving on http://"):
            raise SystemExit(f"the core did not start: {line!r}\n{self.log()}")
        url = line.split()[-1]
        self.port = int(url.rsplit(":", 1)[1])
        return url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.root.glob("core-*.log"))


class CoreSnapshot:
    """The filled store put back under a fresh core (what `measure` calls before a run)."""

    def __init__(self, snapshot: Snapshot, core: Core):
        self.snapshot = snapshot
        self.core = core

    def restore(self) -> None:
        self.core.stop()
        self.snapshot.restore()
        self.core.start()


def remote_config(config: Path, core: Core) -> Path:
    """The local config of the case with the core as its store."""
    text = config.read_text().replace(
        'accessor: {endpoint: "sqlite:///store.db"}',
        f'accessor: {{endpoint: "{core.url}", username: {USER}, password: {PASSWORD}}}',
    )
    path = config.with_name("remote.yaml")
    path.write_text(text)
    return path


def write_config(root: Path, kind: str, workers: int | None) -> Path:
    """`bench_hotpaths.py`'s plugin folder, with the case's code alone (no demo plugin) and
    `sync.workers` when given (the default otherwise)."""
    config = write_case(root, kind, "sqlite:///store.db")  # (installed plugins: none)
    if workers is not None:
        config.write_text(config.read_text() + f"sync: {{workers: {workers}}}\n")
    return config


def prepare(
    kind: str, n: int, work: Path, workers: int | None = None
) -> tuple[Path, Snapshot, Core]:
    """The plugin folder, a store filled with N pending objects (and the core's user), kept
    aside, and the core (not started)."""
    root = work / f"{kind}-{n}-{workers or 'default'}"
    config = write_config(root, kind, workers)
    old = os.getcwd()
    os.chdir(root)  # the SQLite URL is relative to the config's folder
    try:
        t = time.perf_counter()
        fill(config, n)
    finally:
        os.chdir(old)
    core = Core(root)
    core.add_user()
    print(f"# {kind}: filled {n:,} objects in {time.perf_counter() - t:.1f} s", flush=True)
    snapshot = Snapshot("sqlite:///store.db", root)
    snapshot.take()
    return config, snapshot, core


# -- throughput -----------------------------------------------------------------------------


def throughput_case(
    kind: str, n: int, runs: int, work: Path, workers: int | None = None
) -> dict[str, list[dict]]:
    """Local and remote `run --until-idle` on the same filled store, alternating."""
    config, snapshot, core = prepare(kind, n, work, workers)
    core.start()
    remote = remote_config(config, core)
    core.stop()
    over_core = CoreSnapshot(snapshot, core)
    results: dict[str, list[dict]] = {"local": [], "remote": []}
    try:
        for r in range(runs):
            order = ["local", "remote"] if r % 2 == 0 else ["remote", "local"]
            for where in order:
                if where == "local":
                    core.stop()
                    res = measure(config, n, snapshot)
                else:
                    res = measure(remote, n, over_core)
                results[where].append(res)
                print(
                    f"#   run {r + 1} {where:6}: net {res['net_rate']:,.0f}/s "
                    f"({res['net_s']:.2f} s), whole {res['whole_s']:.2f} s, idle "
                    f"{res['idle_s']:.2f} s, peak RSS {res['rss_mib']:.0f} MiB"
                    + "".join(f"\n#     PROBLEM: {p}" for p in res["problems"]),
                    flush=True,
                )
        results["cpu"] = [cpu_split(config, remote, snapshot, over_core, n)]
    finally:
        core.stop()
    return results


def _ticks(pid: int) -> float:
    """CPU seconds (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_run(config: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `run --until-idle` of `config`."""
    argv = [console_script(), "run", "--until-idle", "-C", str(config)]
    t = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime


def cpu_split(
    config: Path, remote: Path, snapshot: Snapshot, over_core: CoreSnapshot, n: int
) -> dict:
    """Where the time of one more run of each goes: the local run's CPU, and over a core
    the run's CPU and the core's (from /proc) against the wall time. Over a core the two
    processes mostly take turns: the wall time is about the sum of their CPU."""
    snapshot.restore()
    local_wall, local_cpu = _cpu_run(config)
    over_core.restore()
    before = _ticks(over_core.core.pid)
    wall, run_cpu = _cpu_run(remote)
    core_cpu = _ticks(over_core.core.pid) - before
    split = {
        "local_wall_us": local_wall / n * 1e6,
        "local_cpu_us": local_cpu / n * 1e6,
        "wall_us": wall / n * 1e6,
        "run_cpu_us": run_cpu / n * 1e6,
        "core_cpu_us": core_cpu / n * 1e6,
    }
    print(
        "#   CPU per object, one more run each (start-up included): local "
        f"{split['local_cpu_us']:.0f} µs CPU in {split['local_wall_us']:.0f} µs; over a core "
        f"the run {split['run_cpu_us']:.0f} µs + the core {split['core_cpu_us']:.0f} µs CPU "
        f"in {split['wall_us']:.0f} µs",
        flush=True,
    )
    return split


# -- latency --------------------------------------------------------------------------------

LATENCY_STEP = textwrap.dedent("""
    import os, time
    from xos_runtime import SyncStep

    _LOG = open(os.environ["XRT_BENCH_CALLS"], "a", buffering=1)  # a line at a time

    class Bench0(SyncStep):
        observes = "BenchM0"

        def sync_record(self, obj):
            _LOG.write(f"{time.time()} {obj.created} {obj.name}\\n")
    """)

WRITER = textwrap.dedent("""
    import sys, time
    from xos_runtime import connect

    acc = connect(sys.argv[1]); n = int(sys.argv[2]); duration = float(sys.argv[3])
    cls = acc.get_model_class("BenchM0")
    cls.objects.create(name="warm-up")
    print("ready", flush=True); sys.stdin.readline()
    t0 = time.time()
    for j in range(n):
        d = t0 + j * duration / n - time.time()
        if d > 0:
            time.sleep(d)  # the writer's pace, not a synchronisation
        cls.objects.create(name="save%d" % j)
    acc.close()
""")


def read_calls(path: Path) -> list[list[str]]:
    """The complete lines of the steps' log: (start, created, name)."""
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [p for p in (ln.split() for ln in lines) if len(p) == 3]


def synced(path: Path, prefix: str) -> int:
    return sum(p[2].startswith(prefix) for p in read_calls(path))


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def latency_run(config: Path, n: int, duration: float, tag: str) -> dict:
    """One long-running `run` and a writer saving N objects over `duration` seconds."""
    calls = config.parent / f"latency-{tag}.log"
    calls.unlink(missing_ok=True)
    env = {**os.environ, "XRT_BENCH_CALLS": str(calls)}
    run = subprocess.Popen(
        [console_script(), "run", "-C", str(config)],
        env=env, cwd=config.parent, stdout=subprocess.DEVNULL,
        stderr=open(config.parent / f"run-{tag}.log", "w"),  # noqa: SIM115
    )  # fmt: skip
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(config), str(n), str(duration)],
        env=env, cwd=config.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    problems: list[str] = []
    try:
        assert writer.stdout is not None and writer.stdin is not None
        if writer.stdout.readline().strip() != "ready":
            raise SystemExit("the writer did not start")
        # the run is up and syncing once the warm-up object is synced
        wait_for(lambda: synced(calls, "warm-up") > 0, 60, "the warm-up object's sync")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        if writer.wait(duration + 60):
            problems.append(f"writer exit code {writer.returncode}")
        wait_for(lambda: synced(calls, "save") >= n, 60, f"{n} syncs ({tag})")
    finally:
        writer.kill() if writer.poll() is None else None
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait(10)
    saves = [p for p in read_calls(calls) if p[2].startswith("save")]
    names = {p[2] for p in saves}
    if len(saves) != n or len(names) != n:
        problems.append(f"{len(saves)} calls for {n} saves ({len(names)} distinct)")
    lat = sorted(float(p[0]) - float(p[1]) for p in saves)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p99": q[98], "max": lat[-1], "problems": problems}


def latency_case(n: int, duration: float, runs: int, work: Path) -> dict[str, list[dict]]:
    # the store with the models (the core serves those of its store) and one object a model
    config, _, core = prepare("latency", K, work)
    (config.parent / "steps" / "bench_code.py").write_text(LATENCY_STEP)
    results: dict[str, list[dict]] = {"local": [], "remote": []}
    try:
        core.start()
        remote = remote_config(config, core)
        for r in range(runs):
            order = ["local", "remote"] if r % 2 == 0 else ["remote", "local"]
            for where in order:
                res = latency_run(
                    config if where == "local" else remote, n, duration, f"{where}-{r}"
                )
                results[where].append(res)
                print(
                    f"#   run {r + 1} {where:6}: save -> sync_record p50 "
                    f"{res['p50'] * 1e3:.1f} ms, p90 {res['p90'] * 1e3:.1f} ms, p99 "
                    f"{res['p99'] * 1e3:.1f} ms, max {res['max'] * 1e3:.1f} ms"
                    + "".join(f"\n#     PROBLEM: {p}" for p in res["problems"]),
                    flush=True,
                )
    finally:
        core.stop()
    return results


# -- the report -----------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    v = [x * 1e3 for x in values]
    return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f}) ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", default="sync,policy,latency")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=20_000, help="N of the sync case")
    ap.add_argument("--policy-n", type=int, default=20_000)
    ap.add_argument("--workers", type=int, help="sync.workers of the sync case (default: 8)")
    ap.add_argument("--saves", type=int, default=200, help="saves of the latency case")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds the saves take")
    ap.add_argument("--quick", action="store_true", help="N=2,000, 50 saves over 2 s")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    if args.quick:
        args.n, args.policy_n, args.saves, args.duration = 2_000, 2_000, 50, 2.0
    cases = set(args.cases.split(","))
    work = Path(tempfile.mkdtemp(prefix="xrt-core-bench-"))
    rows: list[tuple[str, str, str, str, str]] = []
    verdicts: list[str] = []
    problems: list[str] = []

    def record(name: str, results: dict[str, list[dict]]) -> None:
        for where, rs in results.items():
            for r in rs:
                problems.extend(f"{name} ({where}): {p}" for p in r.get("problems", ()))

    try:
        for kind, n in (("sync", args.n), ("policy", args.policy_n)):
            if kind not in cases:
                continue
            res = throughput_case(
                kind, n, args.runs, work, args.workers if kind == "sync" else None
            )
            record(kind, res)
            local = statistics.median(r["net_rate"] for r in res["local"])
            remote = statistics.median(r["net_rate"] for r in res["remote"])
            ratios = [
                rr["net_rate"] / lr["net_rate"]
                for lr, rr in zip(res["local"], res["remote"], strict=True)
            ]
            label = "sync K=4 chain, trivial" if kind == "sync" else "policies, trivial"
            if kind == "sync" and args.workers:
                label += f", {args.workers} workers"
            rows.append(
                (
                    f"{label}, N={n:,}, net objects/s",
                    spread([r["net_rate"] for r in res["remote"]]),
                    spread([r["net_rate"] for r in res["local"]]),
                    f"{remote / local:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                    ">= 0.50x" if kind == "sync" else "",
                )
            )
            cpu = res["cpu"][0]
            rows.append(
                (
                    f"{label}, CPU per object (one more run, with start-up)",
                    f"run {cpu['run_cpu_us']:.0f} + core {cpu['core_cpu_us']:.0f} µs "
                    f"in {cpu['wall_us']:.0f} µs",
                    f"{cpu['local_cpu_us']:.0f} µs in {cpu['local_wall_us']:.0f} µs",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    f"{label}, start-up (idle run), s",
                    f"{statistics.median(r['idle_s'] for r in res['remote']):.2f}",
                    f"{statistics.median(r['idle_s'] for r in res['local']):.2f}",
                    "",
                    "",
                )
            )
            if kind == "sync":
                verdicts.append(
                    f"sync remote {remote / local:.2f}x local: "
                    f"{'PASS' if remote >= 0.5 * local else 'FAIL'}"
                )
        if "latency" in cases:
            res = latency_case(args.saves, args.duration, args.runs, work)
            record("latency", res)
            for q in ("p50", "p90", "p99"):
                rows.append(
                    (
                        f"save -> sync_record {q}, {args.saves} saves in {args.duration:g} s",
                        ms([r[q] for r in res["remote"]]),
                        ms([r[q] for r in res["local"]]),
                        "",
                        "< 50 ms" if q == "p50" else "",
                    )
                )
            p50 = statistics.median(r["p50"] for r in res["remote"])
            verdicts.append(
                f"latency p50 remote {p50 * 1e3:.1f} ms: {'PASS' if p50 < 0.05 else 'FAIL'}"
            )
    finally:
        if args.keep:
            print(f"# work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n# median of {args.runs} runs (min-max); net = whole minus the idle run's median")
    head = ("case", "over a core", "local SQLite", "remote/local", "goal")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    for p in problems:
        print(f"PROBLEM: {p}")
    print("verdict: " + "; ".join(verdicts))
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
