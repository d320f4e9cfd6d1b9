"""Fault injection: real `xos-runtime run` processes on one store, hurt while they work.

Every scenario judges the runtime from the call log of the `xrt-calllog` plugin (one line
per call start and end, from every process; see `calllog.py`) and from the store:

- no object ever has two calls in flight;
- no dependent starts before its dependency's successful call ended;
- nothing is left pending;
- nothing is synced twice, except calls in flight in a SIGKILLed process or whose outcome
  it had not flushed (at most 2 x sync.workers per killed process);
- no process dies (of a database error or anything else), none logs `DeadlockDetected`,
  and each exits 0 on SIGTERM;
- a process with W workers and S abandoned calls has at most W + S + 10 threads.

Waits are on conditions with deadlines, never fixed sleeps. Seeds are fixed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from .calllog import CallLog
from .harness import HOST, Cluster, Proc

pytestmark = pytest.mark.slow

W = 2  # sync.workers of every process


def finish(
    cluster: Cluster,
    *,
    expected: list[str] | None = None,
    exactly_once: bool = False,
    tracebacks: bool = True,
    check_threads: bool = True,
    may_stay_pending: set[str] = frozenset(),  # type: ignore[assignment]
    problems: list[str] | None = None,
) -> CallLog:
    """Stop every live process and assert every invariant; one failure lists all problems
    (those the test found already first)."""
    problems = list(problems or [])
    for p in cluster.procs:
        if p.killed_at is None and not p.expect_exit and not p.alive():
            problems.append(
                f"proc {p.index} (pid {p.pid}) died with exit {p.popen.returncode}:\n{p.tail(30)}"
            )
    stopping = [p for p in cluster.live()]
    codes = cluster.stop_all()
    for p in stopping:
        if codes.get(p.index) != 0:
            problems.append(
                f"proc {p.index} (pid {p.pid}) exited {codes.get(p.index)} on SIGTERM, not 0:\n"
                f"{p.tail(30)}"
            )
    log = cluster.calllog()
    found = log.check(workers=cluster.workers, expected=expected, exactly_once=exactly_once)
    for kind, items in found.items():
        if items:
            problems.append(f"{kind}: {len(items)}\n    " + "\n    ".join(items[:20]))
    problems += cluster.log_problems(tracebacks=tracebacks)
    if check_threads:
        problems += cluster.thread_violations(log)[:10]
    pending = [k for k in cluster.pending_keys(10_000) if k.split(" ")[0] not in may_stay_pending]
    if pending:
        problems.append(f"{len(pending)} objects left pending: {pending[:20]}")
    per_pid = Counter(c.pid for c in log.calls)
    print(f"calls per pid: {dict(per_pid)}; {len(log.calls)} calls")
    print(f"most threads seen per pid: {cluster.max_threads()}")
    assert not problems, "\n".join(problems)
    return log


def done_within(cluster: Cluster, timeout: float, what: str = "") -> list[str]:
    """Wait until nothing is pending; a problem line (for `finish`) on the deadline."""
    if cluster.wait_done(timeout, fail=False):
        return []
    return [f"not every object enacted within {timeout:g} s{what}"]


def first_calls(cluster: Cluster, proc: Proc, n: int = 1) -> Any:
    """Wait condition: `proc` has logged at least `n` call starts and has one in flight."""

    def check() -> Any:
        calls = cluster.calllog().of_pid(proc.pid)
        return len(calls) >= n and any(c.end is None for c in calls)

    return check


# -- (a) sharing ----------------------------------------------------------------------------


def test_three_processes_share_chained_objects(make_cluster, backend):
    cluster = make_cluster(backend, workers=W, step_delay=0.005)
    keys = cluster.seed_chains(150)  # 600 objects
    for _ in range(3):
        cluster.start()
    finish(cluster, expected=keys, exactly_once=True, problems=done_within(cluster, 90))


# -- (b) SIGKILL mid-run --------------------------------------------------------------------


def test_sigkill_of_one_process_mid_run(make_cluster, backend):
    ttl = 30.0
    cluster = make_cluster(backend, workers=W, step_delay=0.02, claim_ttl=ttl)
    keys = cluster.seed_chains(100)  # 400 objects: 8 s of calls, over 6 workers
    procs = [cluster.start() for _ in range(3)]

    def working() -> Proc | None:
        """A process with a call in flight, once 20 calls were made."""
        log = cluster.calllog()
        if len(log.calls) < 20:
            return None
        return next((p for p in procs if log.open_calls(p.pid)), None)

    victim = cluster.wait_for(working, 60, "a process with a call in flight", every=0.02)
    killed_at = victim.kill()
    # one host: the dead process's claims are taken over at once, long before the lease ends
    late = done_within(
        cluster,
        ttl / 2,
        f" of the SIGKILL of pid {victim.pid} (claim_ttl {ttl:g} s; it was on this host: "
        f"its claims are to be taken over at once)",
    )
    print(f"done {time.time() - killed_at:.1f} s after the SIGKILL of pid {victim.pid}")
    finish(cluster, expected=keys, problems=late)


# -- (c) objects created while passes run ----------------------------------------------------

WRITER = """
import random, sys, time
from xos_runtime import connect
acc = connect(sys.argv[1]); chains = int(sys.argv[2]); rate = float(sys.argv[3])
rnd = random.Random(int(sys.argv[4]))
models = [("Root", None), ("Mid", "root"), ("Leaf", "mid"), ("Tip", "leaf")]
t0 = time.time()
for i in range(chains):
    parent = None
    for model, link in models:
        fields = {"name": "w%d-%s" % (i, model.lower())}
        if link:
            fields[link] = parent
        parent = getattr(acc, model).objects.create(**fields)
        print("%s:%d" % (model, parent.id), flush=True)
    # jittered pace, so that creations land at every point of the readers' passes
    delay = t0 + (i + 1) / rate - time.time() + rnd.uniform(-0.5, 0.5) / rate
    if delay > 0:
        time.sleep(delay)
acc.close()
"""


def test_objects_created_while_passes_run(make_cluster, backend):
    cluster = make_cluster(backend, workers=W, step_delay=0.003)
    # a few objects first (this also makes the schema the writer needs), so that both
    # processes are up and working before the writer runs
    warm = cluster.seed_chains(4)
    for _ in range(2):
        cluster.start()
    cluster.wait_for(lambda: not cluster.pending(), 60, "the first chains synced")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, cluster.url_for(None), "120", "30", "7"],
        env=cluster.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0
    keys = warm + out.split()
    assert len(keys) == 4 * 124
    finish(cluster, expected=keys, problems=done_within(cluster, 60))


# -- (d) PostgreSQL connections cut ----------------------------------------------------------


def test_connections_cut_mid_run(make_cluster):
    cluster = make_cluster("postgresql", workers=W, step_delay=0.02)
    keys = cluster.seed_chains(100)
    procs = [cluster.start() for _ in range(2)]
    cluster.wait_for(lambda: len(cluster.calllog().calls) >= 10, 60, "work under way")
    # Cut every connection of one process, then of the other, every 15 calls (whoever makes
    # them), until the work is done: some cuts land in a query, a flush or a claim.
    cuts = []
    for n in range(8):
        victim = procs[n % 2]
        cuts.append((victim.index, cluster.terminate_backends(victim.index)))
        seen = len(cluster.calllog().calls)
        cluster.wait_for(
            lambda s=seen: len(cluster.calllog().calls) >= s + 15 or not cluster.pending(),
            60,
            "work going on after a cut",
            every=0.02,
        )
        if not cluster.pending():
            break
    print(f"connections cut (process, connections): {cuts}")
    finish(cluster, expected=keys, tracebacks=False, problems=done_within(cluster, 60))


# -- (e) hanging steps with timeouts ---------------------------------------------------------


def test_hanging_steps_time_out(make_cluster, backend):
    timeout = 1.0
    cluster = make_cluster(
        backend,
        workers=W,
        timeout=timeout,
        grace_period=2,
        # retry soon, so that a runtime that restarts a still-running call shows it quickly
        backoff={"initial": 0.5, "factor": 1, "max": 0.5, "jitter": 0},
    )
    hung = {0, 3, 6, 9}  # 4 Roots hang: at most max_abandoned (2 x W) even in one process
    keys = cluster.seed_chains(
        20, behaviour=lambda model, i: "hang" if model == "Root" and i in hung else ""
    )
    hang_keys = {keys[4 * i] for i in hung}
    held_back = {k for i, k in enumerate(keys) if i // 4 in hung}
    ok_keys = [k for k in keys if k not in held_back]
    for _ in range(2):
        cluster.start()
    cluster.wait_for(
        lambda: cluster.calllog().synced() >= set(ok_keys),
        60,
        "every object of a chain without a hang synced",
    )

    def timed_out(key: str) -> bool:
        root = cluster.accessor.Root.objects.get(id=int(key.split(":")[1]))
        return "timed out" in (root.backend_status or "")

    cluster.wait_for(
        lambda: all(timed_out(k) for k in hang_keys), 30, "every hanging call timed out"
    )
    # Nothing may start a hung object again while its first call still runs: watch over
    # several retry periods, or until one was called 4 times
    # (runs the whole window on a correct runtime; the threads are sampled meanwhile)
    again = cluster.wait_for(
        lambda: any(len(cluster.calllog().by_key().get(k, [])) >= 4 for k in hang_keys),
        4 * timeout + 2,
        "",
        fail=False,
    )
    print(f"a hung object was called 4 times: {bool(again)}")
    status = cluster.cli("status", "-C", str(cluster.config(None)), timeout=30)
    assert status.returncode == 0, status.stderr
    for k in hang_keys:
        shown = rf"Root {k.split(':')[1]} 'c\d+-root': [^\n]*timed out"
        assert re.search(shown, status.stdout), f"status does not show {k}:\n{status.stdout}"
    started = time.monotonic()
    finish(cluster, expected=ok_keys, may_stay_pending=held_back)
    took = time.monotonic() - started
    assert took < 20, f"stopping took {took:.1f} s with hung calls"


# -- (f) a link named `b` --------------------------------------------------------------------


def test_a_model_with_a_link_named_b(make_cluster, backend):
    cluster = make_cluster(backend, workers=W)
    acc = cluster.accessor
    roots = [acc.Root.objects.create(name=f"r{i}") for i in range(5)]
    odd = {
        "id_": "x",
        "b_enacted": "not a time",
        "b_backend_status": "mine",
        "b_backend_code": "also mine",
        "p0": "p",
        "param_1": "q",
        "key": "k",
        "version": "v",
        "value": "w",
    }
    pairs = [
        acc.Pair.objects.create(name=f"p{i}", b=roots[i % 5] if i % 3 else None, **odd)
        for i in range(12)
    ]
    keys = [f"Root:{r.id}" for r in roots] + [f"Pair:{p.id}" for p in pairs]
    cluster.start()
    late = done_within(cluster, 15)
    log = finish(cluster, expected=keys, exactly_once=True, problems=late)
    assert log.synced() >= set(keys)
    for p in acc.Pair.objects.all():  # the runtime's writes left the model's own fields alone
        assert {k: getattr(p, k) for k in odd} == odd
        assert p.backend_status == "OK"


# -- (g) --until-idle after a SIGKILL --------------------------------------------------------


def test_until_idle_takes_over_from_a_killed_process(make_cluster, backend):
    ttl = 30.0
    cluster = make_cluster(backend, workers=W, step_delay=0.05, claim_ttl=ttl)
    keys = cluster.seed_chains(30)
    victim = cluster.start()
    cluster.wait_for(first_calls(cluster, victim, 12), 60, "the first process working")
    victim.kill()
    held = len(cluster.calllog().of_pid(victim.pid))
    started = time.monotonic()
    idle = cluster.start("--until-idle", "--timeout", str(ttl * 2))
    code = idle.popen.wait(ttl * 3)
    took = time.monotonic() - started
    assert code == 0, f"--until-idle exited {code}:\n{idle.tail(30)}"
    pending = cluster.pending()
    assert pending == 0, (
        f"--until-idle exited 0 after {took:.1f} s having left {pending} objects pending "
        f"(the killed process had made {held} calls; claim_ttl {ttl:g} s): "
        f"{cluster.pending_keys(10)}\n{idle.tail(20)}"
    )
    assert took < ttl / 2, f"--until-idle took {took:.1f} s: it waited for the lease"
    finish(cluster, expected=keys)


# -- (h) two processes without claims ---------------------------------------------------------


def test_second_process_without_claims_refuses_to_start(make_cluster, backend):
    cluster = make_cluster(backend, workers=W, claims=False)
    keys = cluster.seed_chains(1)
    first = cluster.start()
    cluster.wait_for(lambda: cluster.calllog().synced() >= set(keys), 60, "the first one runs")
    second = cluster.start()
    second.expect_exit = True
    code = cluster.wait_for(
        lambda: second.popen.poll() is not None and (second.popen.returncode,),
        15,
        "the second process (sync.claims: false) exits",
        fail=False,
    )
    text = second.text()
    assert code == (2,), (
        f"the second `run` on a store without claims: "
        f"{'still running' if code is None else f'exit {code[0]}'}, expected exit 2\n"
        f"{second.tail(20)}"
    )
    named = [ln for ln in text.splitlines() if HOST in ln and re.search(rf"\b{first.pid}\b", ln)]
    assert named, f"exit 2 without naming the first process (host {HOST}, pid {first.pid}):\n{text}"
    assert first.alive()
    finish(cluster, expected=keys)


# -- (i) extra: change notifications across processes ---------------------------------------


def test_changes_wake_runtimes_whatever_their_application_name(make_cluster):
    """A write by one client wakes a runtime on PostgreSQL at once (LISTEN/NOTIFY), also when
    each gives its connections its own `application_name` (as this harness does)."""
    poll = 20.0  # a notification that never came costs up to this; one that came, a pass
    cluster = make_cluster("postgresql", workers=W, poll_interval=poll)
    acc = cluster.accessor  # its store URL has no application_name, the runtime's has one
    proc = cluster.start()
    latencies = []
    for i in range(2):
        saved = time.time()
        root = acc.Root.objects.create(name=f"late{i}")

        def started(key: str = f"Root:{root.id}") -> float | None:
            calls = cluster.calllog().by_key().get(key, [])
            return calls[0].start if calls else None

        latencies.append(cluster.wait_for(started, 30, f"Root {root.id} synced") - saved)
        # the next save lands while the runtime sleeps (up to poll_interval) after this pass
        cluster.wait_for(lambda: not cluster.pending(), 30, "the outcome stored")
    print(f"save -> sync_record: {[round(x, 2) for x in latencies]} s")
    # well under the poll interval however busy the machine: woken, not polled
    assert max(latencies) < poll / 4, (
        f"save -> sync_record took {max(latencies):.1f} s (poll_interval {poll:.0f} s): the "
        f"runtime (application_name {cluster.application_name(proc.index)}) was not notified"
    )
    finish(cluster)
