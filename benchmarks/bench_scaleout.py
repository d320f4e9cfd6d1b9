#!/usr/bin/env python
"""Scale-out benchmark: several `xos-runtime run` processes sharing one PostgreSQL store.

Workload: N objects (default 6,000) of the `xrt-calllog` test plugin
(tests/fixtures/plugins/xrt-calllog), as N/4 chains Root <- Mid <- Leaf <- Tip, each step
sleeping 5 ms (`XRT_STEP_DELAY`, a stand-in for a REST call) and logging its calls. Every
process runs with `sync.workers: 2`, so that the run is bound by the steps, not by the two
cores: the figure measures how well the processes share the work.

Throughput: for P = 1, 2, 3 processes on a fresh PostgreSQL database, the processes are
started and ready first, then every object becomes pending at once (one UPDATE); the time is
taken from the call log, from the first `sync_record` start of any process to the last end.
Printed: objects/s, the ratio to one process (required: 3 processes >= 2.5x one), and the
pool bound P x 2 / 5 ms. `--runs K` repeats each case and prints min/median/max.

Takeover: two processes on 2,000 objects; the victim works, the survivor joins, then the
victim is SIGKILLed while it has a call in flight. Printed: seconds from the kill to the
survivor's first call on an object the victim had in flight (so had claimed). Once with both
on this host (goal: under 2 s), once with the victim in its own UTS namespace with another
hostname (`unshare --uts`, needs root), where the survivor must wait out the lease
(`sync.claim_ttl`, 5 s here: the reference).

Usage:
  python benchmarks/bench_scaleout.py                 # N=6000, one run of each case
  python benchmarks/bench_scaleout.py --runs 3        # the spread
  XRT_TEST_PG=postgresql+psycopg://user@host/postgres python benchmarks/bench_scaleout.py
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from tests.faults.harness import Cluster, fresh_pg_schema  # noqa: E402

PG_ADMIN = os.environ.get("XRT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PLUGIN = REPO / "tests" / "fixtures" / "plugins" / "xrt-calllog"
WORKERS = 2
STEP = 0.005
OTHER_HOST = "xrt-bench-other-host"


def install_plugin(root: Path) -> Path:
    """`pip install` the plugin into a target folder, as a user would install a plugin."""
    target = root / "xrt-calllog"
    src = root / "src"
    shutil.copytree(PLUGIN, src)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--root-user-action=ignore", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*cmd, "--target", str(target), str(src)], check=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    return target


def create_database() -> tuple[str, Callable[[], None]]:
    name = f"xrt_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name, drivername="postgresql").render_as_string(False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


def cluster(root: Path, store: str, plugin: Path, ttl: float) -> Cluster:
    return Cluster(
        root,
        store,
        [plugin],
        workers=WORKERS,
        step_delay=STEP,
        claim_ttl=ttl,
        poll_interval=1.0,
        grace_period=5,
        # one store URL for all: the runtime derives its NOTIFY channel from the whole URL
        name_connections=False,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle() -> None:
    """A process logs that it runs as its first pass starts: let that (empty) pass end, so
    that the work made pending next is seen whole by its next pass."""
    time.sleep(0.5)


def violations(c: Cluster, keys: list[str]) -> list[str]:
    found = c.calllog().check(workers=WORKERS, expected=keys)
    return [
        f"{kind}: {len(items)} (first: {items[0][:300]})" for kind, items in found.items() if items
    ]


# -- throughput ---------------------------------------------------------------------------


def throughput(args: argparse.Namespace, db: str, plugin: Path, root: Path) -> dict[int, list]:
    store = fresh_pg_schema(db)
    keys: list[str] = []
    rates: dict[int, list] = {p: [] for p in args.processes}
    for run in range(args.runs):
        for p in args.processes:
            c = cluster(root / f"throughput-p{p}-r{run}", store, plugin, args.claim_ttl)
            try:
                if not keys:
                    t = time.perf_counter()
                    keys = c.seed_chains(args.n // 4)
                    print(f"# seeded {len(keys)} objects in {time.perf_counter() - t:.1f} s")
                c.mark_all_synced()
                procs = [c.start() for _ in range(p)]
                c.wait_ready(procs)
                settle()
                cpu0 = sum(cpu_seconds(pr.pid) for pr in procs)
                c.resync_all()
                done = c.wait_done(args.deadline, fail=False)
                cpu = sum(cpu_seconds(pr.pid) for pr in procs) - cpu0
                log = c.calllog()
                ok = [x for x in log.calls if x.ok and x.end is not None]
                if not ok:
                    raise SystemExit(f"P={p}: no successful call\n{c.describe()}")
                span = max(x.end or 0.0 for x in ok) - min(x.start for x in log.calls)
                share = sorted(sum(1 for x in ok if x.pid == pr.pid) for pr in procs)
                codes = c.stop_all()
                problems = violations(c, keys)
                if not done:
                    problems.append(f"{c.pending()} objects still pending after {args.deadline} s")
                if any(code != 0 for code in codes.values()):
                    problems.append(f"exit codes on SIGTERM: {codes}")
                rates[p].append(
                    {
                        "rate": len(keys) / span,
                        "span": span,
                        "share": share,
                        "problems": problems,
                        "cpu_ms": cpu / len(keys) * 1e3,
                    }
                )
                r = rates[p][-1]
                print(
                    f"#   P={p} run {run + 1}: {r['rate']:,.0f} objects/s over {span:.2f} s, "
                    f"successful calls per process {share}, "
                    f"runtime CPU {r['cpu_ms']:.2f} ms/object"
                    + "".join(f"\n#     PROBLEM: {x}" for x in problems)
                )
            finally:
                c.close()
    return rates


# -- takeover -----------------------------------------------------------------------------


def takeover(
    args: argparse.Namespace, db: str, plugin: Path, root: Path, *, other_host: bool
) -> dict:
    store = fresh_pg_schema(db)
    c = cluster(
        root / f"takeover-{'hosts' if other_host else 'host'}", store, plugin, args.claim_ttl
    )
    try:
        keys = c.seed_chains(args.takeover_n // 4)
        c.mark_all_synced()
        wrap = None
        if other_host:

            def wrap(argv: list[str]) -> list[str]:
                script = 'hostname "$0" && exec "$@"'
                return ["unshare", "--uts", "sh", "-c", script, OTHER_HOST, *argv]

        victim = c.start(wrap=wrap)
        c.wait_ready([victim])
        settle()
        c.resync_all()
        c.wait_for(lambda: len(c.calllog().of_pid(victim.pid)) >= 50, 60, "the victim working")
        survivor = c.start()
        c.wait_ready([survivor])
        c.wait_for(
            lambda: c.calllog().open_calls(victim.pid),
            60,
            "a call in flight in the victim",
            every=0.005,
        )
        killed_at = victim.kill()
        log = c.calllog()
        held = {
            x.key
            for x in log.calls
            if x.pid == victim.pid and x.start <= killed_at and x.end is None
        }
        hosts = {x.host for x in log.calls if x.pid == victim.pid}

        def taken() -> float | None:
            calls = c.calllog().of_pid(survivor.pid)
            starts = [x.start for x in calls if x.key in held and x.start >= killed_at]
            return min(starts) if starts else None

        first = c.wait_for(
            taken, args.claim_ttl + 60, "the survivor takes over", fail=False, every=0.02
        )
        done = c.wait_done(args.deadline, fail=False)
        after = c.calllog()
        resumed = [x.start for x in after.of_pid(survivor.pid) if x.start >= killed_at]
        c.stop_all()
        problems = violations(c, keys)
        if not done:
            problems.append(f"{c.pending()} objects still pending")
        return {
            "took": None if first is None else first - killed_at,
            "any_call": (min(resumed) - killed_at) if resumed else None,
            "held": sorted(held),
            "victim_host": ",".join(sorted(hosts)),
            "problems": problems,
        }
    finally:
        c.close()


# -- the driver ---------------------------------------------------------------------------


def fmt(x: float | None, unit: str = "s") -> str:
    return "never" if x is None else f"{x:.2f} {unit}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=6000, help="objects (N/4 chains of 4)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each case, for the spread")
    ap.add_argument("--processes", default="1,2,3")
    ap.add_argument("--claim-ttl", type=float, default=5.0, help="sync.claim_ttl (the lease)")
    ap.add_argument("--takeover-n", type=int, default=2000)
    ap.add_argument("--deadline", type=float, default=180.0, help="seconds a case may take")
    ap.add_argument("--skip-takeover", action="store_true")
    args = ap.parse_args()
    args.processes = [int(x) for x in args.processes.split(",")]

    root = Path(tempfile.mkdtemp(prefix="xrt-scaleout-"))
    plugin = install_plugin(root)
    db, drop = create_database()
    try:
        print(
            f"# N={args.n} ({args.n // 4} chains of 4), {STEP * 1000:g} ms steps, "
            f"sync.workers {WORKERS} per process, PostgreSQL; timed from the first sync_record "
            f"start to the last end (call log)"
        )
        rates = throughput(args, db, plugin, root)
        host = other = None
        if not args.skip_takeover:
            host = takeover(args, db, plugin, root, other_host=False)
            other = takeover(args, db, plugin, root, other_host=True)
    finally:
        drop()

    med = {p: statistics.median(r["rate"] for r in rs) for p, rs in rates.items()}
    base = med.get(1)
    print()
    print(
        f"{'processes':>9} {'objects/s (median)':>19} {'min':>8} {'max':>8} {'vs 1':>6} "
        f"{'pool bound':>11} {'of bound':>9}"
    )
    for p, rs in rates.items():
        values = [r["rate"] for r in rs]
        bound = p * WORKERS / STEP
        ratio = f"{med[p] / base:.2f}x" if base else "-"
        print(
            f"{p:>9} {med[p]:>19,.0f} {min(values):>8,.0f} {max(values):>8,.0f} {ratio:>6} "
            f"{bound:>9,.0f}/s {med[p] / bound:>9.0%}"
        )
    verdicts = []
    if base and 3 in med:
        r3 = med[3] / base
        verdicts.append(
            f"3 processes {r3:.2f}x one (required >= 2.5x): {'PASS' if r3 >= 2.5 else 'FAIL'}"
        )
    if host is not None and other is not None:
        print()
        print(f"{'takeover after SIGKILL':32} {'measured':>10} {'goal/reference':>16}")
        print(f"{'  same host':32} {fmt(host['took']):>10} {'< 2 s (goal)':>16}")
        print(
            f"{'  other host (' + other['victim_host'] + ')':32} {fmt(other['took']):>10} "
            f"{f'{args.claim_ttl:g} s (lease)':>16}"
        )
        print(
            f"# measured: SIGKILL -> the survivor's first call on an object in flight in the "
            f"victim ({len(host['held'])} and {len(other['held'])} such objects); first survivor "
            f"call on anything after the kill: {fmt(host['any_call'])} and {fmt(other['any_call'])}"
        )
        ok_host = host["took"] is not None and host["took"] < 2.0
        verdict = "PASS" if ok_host else "FAIL"
        verdicts.append(f"takeover on one host {fmt(host['took'])} (goal < 2 s): {verdict}")
        # A claim is renewed while its process works, so it ends between the last renewal
        # and one lease after the kill: half the lease is the earliest a correct runtime
        # can take over; more than the lease plus a few seconds means it waited too long.
        took = other["took"]
        ttl = args.claim_ttl
        if took is None:
            ok_other = "FAIL: never taken over"
        elif took < ttl / 2:
            ok_other = "FAIL: taken over before the lease could have ended"
        elif took > ttl + 3:
            ok_other = "FAIL: waited well past the lease"
        else:
            ok_other = "PASS"
        verdicts.append(f"across hosts {fmt(took)} (the {ttl:g} s lease): {ok_other}")
        for name, r in (("same host", host), ("other host", other)):
            for x in r["problems"]:
                print(f"# {name} PROBLEM: {x}")
    bad_runs = sum(1 for rs in rates.values() for r in rs if r["problems"])
    if bad_runs:
        verdicts.append(f"{bad_runs} throughput run(s) with problems (see PROBLEM above)")
    print()
    print("verdict: " + "; ".join(verdicts))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
