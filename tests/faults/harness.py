"""Real `xos-runtime run` processes on one store, and the means to hurt them.

A `Cluster` writes one config per runtime process (the same store; on PostgreSQL each with
its own `application_name`, so that a test can cut exactly that process's connections),
seeds objects of the `xrt-calllog` models, starts processes with `start()`, and waits on
conditions with deadlines (`wait_for`), sampling the thread count of every live process on
the way. Processes write their log (stderr and stdout) to `proc-<n>.log`; every sync call of
every process goes to one call log (`calls.jsonl`), read with `calllog()`.

Used by the tests of this folder and by `benchmarks/bench_scaleout.py`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from .calllog import CallLog

REPO = Path(__file__).resolve().parents[2]
CHAIN = ("Root", "Mid", "Leaf", "Tip")
LINK = {"Mid": "root", "Leaf": "mid", "Tip": "leaf"}
HOST = socket.gethostname()
#: What a runtime's log shows when it dies of, or trips on, the database.
DEADLOCK = "DeadlockDetected"
#: What `run` logs once its engines run.
READY = re.compile(r"running \d+ engine")
#: The synchronizer user runtimes log in to a core as (`start_core`).
CORE_USER, CORE_PASSWORD = "faults-sync", "faults-secret"


def fresh_pg_schema(database_url: str) -> str:
    """A new, empty schema in a PostgreSQL database, as a store URL that uses it."""
    schema = f"faults_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return f"{database_url}?options=-csearch_path%3D{schema}"


def supported_sync_keys() -> set[str]:
    """The `sync` config keys the runtime under test knows (newer ones add keys)."""
    import attrs

    from xos_runtime.config.settings import SyncSettings

    return set(attrs.fields_dict(SyncSettings))


class Proc:
    """One `xos-runtime` process started by a `Cluster`."""

    def __init__(self, index: int, popen: subprocess.Popen[bytes], log: Path, argv: list[str]):
        self.index = index
        self.popen = popen
        self.log = log
        self.argv = argv
        self.killed_at: float | None = None
        self.exited_at: float | None = None
        self.terminated_at: float | None = None
        #: Exits on its own (`--until-idle`, `--once`, or a test that expects it to stop).
        self.expect_exit = "--until-idle" in argv or "--once" in argv
        self.started_at = time.time()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        if self.popen.poll() is None:
            return True
        if self.exited_at is None:
            self.exited_at = time.time()
        return False

    def kill(self) -> float:
        """SIGKILL; returns the kill time (epoch seconds, the call log's clock)."""
        self.killed_at = time.time()
        self.popen.kill()
        self.popen.wait(10)
        return self.killed_at

    def send_term(self) -> None:
        """SIGTERM, once: a second one during the interpreter's shutdown would kill it."""
        if self.terminated_at is None and self.popen.poll() is None:
            self.terminated_at = time.time()
            self.popen.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; the exit code, or None if it did not exit in time (then killed)."""
        self.send_term()
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            code = None
        if self.exited_at is None:
            self.exited_at = time.time()
        return code

    def threads(self) -> int | None:
        """Threads of the process now (`/proc/<pid>/task`), None once it is gone."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/task"))
        except FileNotFoundError:
            return None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


class Cluster:
    """Runtime processes sharing one store (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        store_url: str,
        pythonpath: Sequence[Path | str],
        *,
        workers: int = 2,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        grace_period: float = 5.0,
        claims: bool | None = None,
        claim_ttl: float | None = 30.0,
        max_abandoned: int | None = None,
        backoff: dict[str, float] | None = None,
        step_delay: float = 0.0,
        log_level: str = "INFO",
        name_connections: bool = True,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store_url = store_url
        self.backend = "postgresql" if store_url.startswith("postgres") else "sqlite"
        self.workers = workers
        self.timeout = timeout
        self.max_abandoned = max_abandoned if max_abandoned is not None else 2 * workers
        sync: dict[str, Any] = {
            "workers": workers,
            "timeout": timeout,
            "poll_interval": poll_interval,
            "grace_period": grace_period,
        }
        if claims is not None:
            sync["claims"] = claims
        if claim_ttl is not None:
            sync["claim_ttl"] = claim_ttl
        if backoff is not None:
            sync["backoff"] = backoff
        if max_abandoned is not None and "max_abandoned" in supported_sync_keys():
            sync["max_abandoned"] = max_abandoned
        # XRT_FAULTS_SYNC='{"claims": true}': settings for every run, under the test's own
        # (to explore a runtime with other defaults)
        overrides = json.loads(os.environ.get("XRT_FAULTS_SYNC") or "{}")
        explicit = {"claims": claims, "max_abandoned": max_abandoned, "timeout": timeout}
        for key, value in overrides.items():
            if explicit.get(key) is None:
                sync[key] = value
        self.sync = sync
        self.log_level = log_level
        self.name_connections = name_connections
        self.calls_path = self.root / "calls.jsonl"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(REPO)]),
            "XRT_CALLLOG": str(self.calls_path),
            "XRT_STEP_DELAY": str(step_delay),
        }
        self.procs: list[Proc] = []
        #: The core the runtimes use (`start_core`), its URL and its port (kept on restarts).
        self.core: subprocess.Popen[str] | None = None
        self.core_url: str | None = None
        self.core_port = 0
        self.core_starts = 0
        #: `accessor.retry_for` of the runtimes over the core: how long one request waits.
        self.core_retry_for = 30.0
        #: (time, pid, threads) of every live process, sampled by `wait_for`.
        self.thread_samples: list[tuple[float, int, int]] = []
        self._accessor: Any = None

    # -- configs and processes ------------------------------------------------------------

    def url_for(self, index: int | None) -> str:
        """The store URL of process `index`: on PostgreSQL it names the connections."""
        if self.backend != "postgresql" or index is None or not self.name_connections:
            return self.store_url
        sep = "&" if "?" in self.store_url else "?"
        return f"{self.store_url}{sep}application_name={self.application_name(index)}"

    @staticmethod
    def application_name(index: int) -> str:
        return f"xrt-fault-{index}"

    def accessor_section(self, index: int | None) -> dict[str, Any]:
        """Where process `index` finds the models: the store, or the core when one runs
        (`start_core`; the test's own accessor, `index` None, always opens the store)."""
        if self.core_url is None or index is None:
            return {"endpoint": self.url_for(index)}
        return {
            "endpoint": self.core_url,
            "username": CORE_USER,
            "password": CORE_PASSWORD,
            "retry_for": self.core_retry_for,
        }

    def config(self, index: int | None = None, **sync: Any) -> Path:
        name = f"config-{index}.yaml" if index is not None else "config.yaml"
        path = self.root / name
        path.write_text(
            yaml.safe_dump(
                {
                    "name": "faults",
                    "accessor": self.accessor_section(index),
                    "sync": {**self.sync, **sync},
                    "plugins": {"disabled": ["xos-runtime-demo"]},
                    "logging": {"level": self.log_level},
                }
            )
        )
        return path

    def start(
        self,
        *args: str,
        sync: dict[str, Any] | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
        env: dict[str, str] | None = None,
    ) -> Proc:
        """Start `xos-runtime run -C <its config> *args` (the next process index)."""
        index = len(self.procs)
        config = self.config(index, **(sync or {}))
        argv = [sys.executable, "-m", "xos_runtime", "run", "-C", str(config), *args]
        if wrap is not None:
            argv = wrap(argv)
        log = self.root / f"proc-{index}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        proc = Proc(index, popen, log, argv)
        self.procs.append(proc)
        return proc

    # -- a core between the runtimes and the store ------------------------------------------

    def core_config(self) -> Path:
        path = self.root / "core.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "name": "faults-core",
                    "accessor": {"endpoint": self.store_url},
                    "plugins": {"disabled": ["xos-runtime-demo"]},
                    "logging": {"level": self.log_level},
                }
            )
        )
        return path

    def start_core(self, timeout: float = 30) -> str:
        """Start `xos-runtime core serve` on the store (again on the same port after
        `stop_core`), with the synchronizer user the runtimes log in as; its URL. Runtime
        processes started afterwards use it (`accessor_section`)."""
        config = self.core_config()
        if not self.core_starts:
            added = subprocess.run(
                [sys.executable, "-m", "xos_runtime", "core", "user", "add", CORE_USER,
                 "--synchronizer", "--password-stdin", "-C", str(config)],
                input=CORE_PASSWORD, env=self.env, text=True, capture_output=True, timeout=60,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
        self.core_starts += 1
        log = open(self.root / f"core-{self.core_starts}.log", "w")  # noqa: SIM115
        self.core = subprocess.Popen(
            [sys.executable, "-m", "xos_runtime", "core", "serve", "-C", str(config),
             "--port", str(self.core_port)],
            env=self.env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=self.root,
        )  # fmt: skip
        log.close()
        assert self.core.stdout is not None
        line = self.core.stdout.readline()
        assert line.startswith("serving on http://"), (line, self.core_log())
        self.core_url = line.split()[-1]
        self.core_port = int(self.core_url.rsplit(":", 1)[1])
        return self.core_url

    def stop_core(self) -> None:
        """SIGTERM the core and wait for it (runtimes wait for it to come back)."""
        if self.core is not None and self.core.poll() is None:
            self.core.terminate()
            try:
                self.core.wait(20)
            except subprocess.TimeoutExpired:
                self.core.kill()
                self.core.wait(10)

    def core_log(self) -> str:
        return "\n".join(
            (self.root / f"core-{n}.log").read_text(errors="replace")
            for n in range(1, self.core_starts + 1)
            if (self.root / f"core-{n}.log").exists()
        )

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Another `xos-runtime` command (status, objects...) on the shared config."""
        return subprocess.run(
            [sys.executable, "-m", "xos_runtime", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.root,
        )

    def live(self) -> list[Proc]:
        return [p for p in self.procs if p.killed_at is None and p.alive()]

    def stop_all(self, timeout: float = 30) -> dict[int, int | None]:
        """SIGTERM every process still running; exit code by process index."""
        live = self.live()
        for p in live:
            p.send_term()
        return {p.index: p.terminate(timeout) for p in live}

    def close(self) -> None:
        if self.core is not None and self.core.poll() is None:
            self.core.kill()
            self.core.wait(10)
        if self.core is not None and self.core.stdout is not None:
            self.core.stdout.close()
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait(10)
        if self._accessor is not None:
            self._accessor.close()
            self._accessor = None

    # -- the store ------------------------------------------------------------------------

    @property
    def accessor(self) -> Any:
        """An accessor on the store with the `xrt-calllog` models (creates the schema).

        Opened through a config file, as `xos-runtime run` opens it: needs `xrt-calllog`
        importable in this process.
        """
        if self._accessor is None:
            from xos_runtime import connect

            self._accessor = connect(self.config(None))
        return self._accessor

    def seed_chains(
        self, chains: int, *, behaviour: Callable[[str, int], str] | None = None
    ) -> list[str]:
        """`chains` chains Root <- Mid <- Leaf <- Tip; returns their keys ("Model:id")."""
        acc = self.accessor
        keys = []
        for i in range(chains):
            parent = None
            for model in CHAIN:
                fields: dict[str, Any] = {
                    "name": f"c{i}-{model.lower()}",
                    "behaviour": behaviour(model, i) if behaviour else "",
                }
                if parent is not None:
                    fields[LINK[model]] = parent
                parent = getattr(acc, model).objects.create(**fields)
                keys.append(f"{model}:{parent.id}")
        return keys

    def pending(self) -> int:
        """Live rows not enacted at their current version (`enacted < updated`, or never)."""
        store = self.accessor.store
        total = 0
        with store.read() as conn:
            for table in store.schema.tables.values():
                c = table.c
                q = (
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(
                        c.deleted == sa.false(),
                        sa.or_(c.enacted.is_(None), c.enacted < c.updated),
                    )
                )
                total += int(conn.execute(q).scalar_one())
        return total

    def pending_keys(self, limit: int = 40) -> list[str]:
        store = self.accessor.store
        out: list[str] = []
        with store.read() as conn:
            for table in store.schema.tables.values():
                c = table.c
                q = sa.select(c.leaf_model_name, c.id, c.backend_status).where(
                    c.deleted == sa.false(),
                    sa.or_(c.enacted.is_(None), c.enacted < c.updated),
                )
                for r in conn.execute(q.limit(limit)):
                    out.append(f"{r[0]}:{r[1]} ({r[2]})")
        return out[:limit]

    def _set_all(self, values: Callable[[sa.Table], dict[str, Any]]) -> None:
        """One UPDATE per table, in one transaction that wakes every runtime."""
        store = self.accessor.store
        models = set(store.touched_names(self.accessor.models.names()))
        with store.write(models) as conn:
            for table in store.schema.tables.values():
                conn.execute(sa.update(table).values(values(table)))

    def mark_all_synced(self) -> None:
        """Every row in sync (`enacted = updated`): nothing to do until `resync_all`."""
        self._set_all(lambda t: {"enacted": t.c.updated, "backend_code": 1})

    def resync_all(self) -> None:
        """Every row pending again, all at the same instant (for benchmarks: the runtimes
        are started and ready before the work appears)."""
        self._set_all(
            lambda t: {
                "enacted": None,
                "backend_code": 0,
                "backend_status": "Provisioning in progress",
                "backend_register": "{}",
            }
        )

    def wait_ready(self, procs: Iterable[Proc], timeout: float = 60) -> None:
        """Until each process says it runs its engines (or has made a call)."""
        procs = list(procs)

        def ready() -> bool:
            called = {c.pid for c in self.calllog().calls}
            return all(p.pid in called or READY.search(p.text()) for p in procs)

        self.wait_for(ready, timeout, "every process ready", every=0.05)

    # -- PostgreSQL faults ----------------------------------------------------------------

    def terminate_backends(self, index: int) -> int:
        """`pg_terminate_backend` every connection of process `index`; how many were cut."""
        assert self.backend == "postgresql"
        admin_url = self.store_url.split("?")[0].replace("postgresql://", "postgresql+psycopg://")
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": self.application_name(index)},
                ).all()
        finally:
            engine.dispose()
        return sum(1 for r in rows if r[0])

    # -- waiting and observing ------------------------------------------------------------

    def sample_threads(self) -> None:
        now = time.time()
        for p in self.live():
            n = p.threads()
            if n is not None:
                self.thread_samples.append((now, p.pid, n))

    def wait_for(
        self,
        condition: Callable[[], Any],
        timeout: float,
        what: str,
        *,
        every: float = 0.1,
        fail: bool = True,
    ) -> Any:
        """Poll `condition` until it returns something truthy, at most `timeout` seconds.

        Samples the threads of every live process on the way. On the deadline: fails with
        `what`, the pending objects and the tail of each process log (or returns None with
        `fail=False`).
        """
        deadline = time.monotonic() + timeout
        while True:
            self.sample_threads()
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                break
            time.sleep(every)
        if not fail:
            return None
        raise AssertionError(f"not within {timeout:g} s: {what}\n{self.describe()}")

    def wait_done(
        self, timeout: float, what: str = "every object enacted", *, fail: bool = True
    ) -> bool:
        """Wait until nothing is pending; False on the deadline with `fail=False`."""
        return bool(self.wait_for(lambda: self.pending() == 0, timeout, what, every=0.2, fail=fail))

    def describe(self) -> str:
        parts = []
        try:
            parts.append(f"pending ({self.pending()}): {self.pending_keys(15)}")
        except Exception as exc:  # the report must not hide the failure it describes
            parts.append(f"pending: cannot read the store: {exc}")
        try:
            log = self.calllog()
            per_pid = Counter(c.pid for c in log.calls)
            in_flight = Counter(c.pid for c in log.calls if c.end is None)
            parts.append(f"calls per pid: {dict(per_pid)}; without an end: {dict(in_flight)}")
        except Exception as exc:
            parts.append(f"call log unreadable: {exc}")
        for p in self.procs:
            state = (
                "killed"
                if p.killed_at
                else ("running" if p.popen.poll() is None else f"exit {p.popen.returncode}")
            )
            parts.append(f"--- proc {p.index} pid {p.pid} ({state}), last log lines:\n{p.tail(15)}")
        return "\n".join(parts)

    def calllog(self) -> CallLog:
        killed = {p.pid: p.killed_at for p in self.procs if p.killed_at is not None}
        exited = {
            p.pid: p.exited_at
            for p in self.procs
            if p.exited_at is not None and p.killed_at is None
        }
        return CallLog.load(self.calls_path, killed=killed, exited=exited)

    def calls_of(self, proc: Proc) -> list[Any]:
        return self.calllog().of_pid(proc.pid)

    # -- process health -------------------------------------------------------------------

    def log_problems(
        self, procs: Iterable[Proc] | None = None, *, tracebacks: bool = True
    ) -> list[str]:
        """`DeadlockDetected` (and, with `tracebacks`, `Traceback`) lines in process logs."""
        out = []
        for p in procs if procs is not None else self.procs:
            text = p.text()
            for needle in (DEADLOCK, "Traceback") if tracebacks else (DEADLOCK,):
                n = text.count(needle)
                if n:
                    lines = [
                        ln for ln in text.splitlines() if re.search(r"Error|Exception|Detected", ln)
                    ]
                    out.append(
                        f"proc {p.index} (pid {p.pid}) logged {needle} {n} time(s); "
                        f"error lines: {lines[:5]}"
                    )
        return out

    def thread_violations(self, log: CallLog, extra: int = 10) -> list[str]:
        """Samples where a process held more abandoned calls than `max_abandoned`, or had more
        than W + S + `extra` threads.

        S is the number of its abandoned calls at that moment (in flight for longer than
        `sync.timeout`), counted at most `max_abandoned`: the runtime must not hold more.
        """
        out = []
        for t, pid, n in self.thread_samples:
            abandoned = [
                c
                for c in log.open_calls(pid, at=t)
                if self.timeout is not None and t - c.start >= self.timeout
            ]
            if len(abandoned) > self.max_abandoned:
                out.append(
                    f"pid {pid} held {len(abandoned)} abandoned calls at {t - log.t0:.1f} s, "
                    f"more than max_abandoned {self.max_abandoned}: "
                    + ", ".join(sorted({c.key for c in abandoned}))
                )
            s = min(len(abandoned), self.max_abandoned)
            bound = self.workers + s + extra
            if n > bound:
                out.append(
                    f"pid {pid} had {n} threads at {t - log.t0:.1f} s, more than W "
                    f"{self.workers} + S {s} (abandoned calls: {len(abandoned)} in flight, "
                    f"counted at most max_abandoned {self.max_abandoned}) + {extra} = {bound}"
                )
        return out

    def max_threads(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for _t, pid, n in self.thread_samples:
            out[pid] = max(out.get(pid, 0), n)
        return out
