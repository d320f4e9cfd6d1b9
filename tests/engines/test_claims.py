"""Several runtimes on one store: each object is synced once; a dead runtime's work is taken
over after its claims expire."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from xos_runtime import connect
from xos_runtime.engines.sync.engine import _share_of
from xos_runtime.exceptions import StoreError
from xos_runtime.store import Claims, Lease, ProcessIdentity, sync_pending
from xos_runtime.store.claims import _start_ticks

REPO = Path(__file__).resolve().parents[2]


def _cli_env(installed_dists, **extra: str) -> dict[str, str]:
    """The environment of a `run` subprocess that finds the `xrt-engine` distribution."""
    path = os.pathsep.join([str(installed_dists["xrt-engine"]), str(REPO)])
    return {**os.environ, "PYTHONPATH": path, **extra}


def _cli_config(tmp_path: Path, name: str, url: str, **sync) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "accessor": {"endpoint": url},
                "sync": sync,
                "plugins": {"disabled": ["xos-runtime-demo"]},
            }
        )
    )
    return config


def _sites(rt, n: int, behaviour: str = "sleep:20") -> list:
    return [rt.accessor.Site.objects.create(name=f"s{i}", behaviour=behaviour) for i in range(n)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_runtimes_sync_each_object_once(make_runtime, engine_steps, request, backend):
    url = request.getfixturevalue("pg_store_url") if backend == "postgresql" else None
    claims = {"claims": True} if backend == "sqlite" else {}  # automatic on PostgreSQL
    first = make_runtime(store_url=url, sync={"workers": 3, **claims})
    second = make_runtime(
        store_url=url or first.settings.accessor.endpoint, sync={"workers": 3, **claims}
    )
    sites = _sites(first, 24)
    for i in range(6):
        first.accessor.Slice.objects.create(name=f"sl{i}", site=sites[i])
    engines = [first.engines()[0], second.engines()[0]]
    assert all(e.claims is not None for e in engines)
    reports: list = []
    threads = [threading.Thread(target=lambda e=e: reports.append(e.run_pass())) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:  # what one held back (claimed by the other) the next pass finishes
        reports.append(e.run_pass())
    synced = Counter(c["name"] for c in engine_steps.CALLS)
    assert set(synced) == {f"s{i}" for i in range(24)} | {f"sl{i}" for i in range(6)}
    assert max(synced.values()) == 1  # never twice, whoever claimed it
    assert sum(r.attempted for r in reports) == 30
    assert first.accessor.fetch_pending(["Site", "Slice"]) == []


def _other_process(rt, clock, *, host: str, pid: int) -> Claims:
    """Claims of a `run` that registered with the given host and pid, then stopped renewing."""
    lease = Lease(rt.accessor.store, ttl=30, clock=clock)
    here = lease.identity
    lease.identity = ProcessIdentity(host, here.boot_id, pid, _start_ticks(pid) or "12345")
    lease.owner = f"{host}:{pid}:test"
    lease.register()
    return Claims(lease, "sync")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_of_another_hosts_process_are_taken_over_after_its_lease(
    make_runtime, engine_steps, clock
):
    rt = make_runtime(sync={"claims": True, "claim_ttl": 30})
    site = rt.accessor.Site.objects.create(name="s")
    sl = rt.accessor.Slice.objects.create(name="sl", site=site)
    other = _other_process(rt, clock, host="elsewhere.example", pid=os.getpid())
    assert other.claim([("Site", site.id)]) == {("Site", site.id)}
    report = rt.engines()[0].run_pass()
    assert report.attempted == 0  # the site is someone else's; its slice waits, unstamped
    assert report.held_elsewhere == 1
    assert rt.accessor.Slice.objects.get(id=sl.id).backend_status == "Provisioning in progress"
    clock.advance(29)  # its lease still runs
    assert rt.engines()[0].run_pass().attempted == 0
    clock.advance(2)  # it never renewed: gone
    assert rt.engines()[0].run_pass().succeeded == 2
    table = rt.accessor.store.schema.claims
    with rt.accessor.store.read() as conn:  # its claims were taken over, ours released
        assert list(conn.execute(table.select())) == []


def test_claims_of_a_dead_process_on_this_host_are_taken_over_at_once(
    make_runtime, engine_steps, clock
):
    rt = make_runtime(sync={"claims": True, "claim_ttl": 3600})
    site = rt.accessor.Site.objects.create(name="s")
    here = ProcessIdentity.current()
    other = _other_process(rt, clock, host=here.host, pid=_dead_pid())
    assert other.claim([("Site", site.id)]) == {("Site", site.id)}
    assert rt.engines()[0].run_pass().succeeded == 1  # no lease to wait out


def test_claims_of_a_live_process_on_this_host_are_respected(make_runtime, engine_steps, clock):
    rt = make_runtime(sync={"claims": True, "claim_ttl": 3600})
    site = rt.accessor.Site.objects.create(name="s")
    here = ProcessIdentity.current()
    other = _other_process(rt, clock, host=here.host, pid=os.getppid())
    other.claim([("Site", site.id)])
    assert rt.engines()[0].run_pass().attempted == 0
    clock.advance(3601)  # alive on this host: its claims hold even past its lease
    assert rt.engines()[0].run_pass().attempted == 0


def test_two_processes_on_postgresql(pg_store_url, installed_dists, tmp_path):
    log = tmp_path / "calls.jsonl"
    env = _cli_env(installed_dists, XRT_ENGINE_LOG=str(log))
    config = _cli_config(tmp_path, "shared", pg_store_url, workers=2, poll_interval=0.3)
    cmd = [sys.executable, "-m", "xos_runtime", "run", "-C", str(config)]
    # both start on an empty store: creating the schema together must not fail either
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while True:  # until one of them has created the schema
            try:
                acc = connect(pg_store_url)
                break
            except StoreError:
                assert time.monotonic() < deadline, "no schema after 60 s"
                time.sleep(0.1)
        for i in range(30):
            acc.Site.objects.create(name=f"p{i}", behaviour="sleep:30")
        done: list[dict] = []
        while time.monotonic() < deadline:
            if log.exists():
                done = [json.loads(x) for x in log.read_text().split("\n")[:-1]]  # whole lines
                done = [d for d in done if d["event"] == "end"]
                if len({d["name"] for d in done}) == 30:
                    break
            time.sleep(0.1)
        counts = Counter(d["name"] for d in done)
        assert len(counts) == 30 and max(counts.values()) == 1
        while acc.fetch_pending(["Site"]):  # the last outcomes are stored within 100 ms
            assert time.monotonic() < deadline, "outcomes not stored"
            time.sleep(0.02)
        acc.close()
    finally:
        for p in procs:
            p.terminate()
        codes = [p.wait(30) for p in procs]
    # both were alive until the end (neither died creating the schema) and drained cleanly
    assert codes == [0, 0], [p.stderr.read() if p.stderr else "" for p in procs]


def test_two_runtimes_run_each_policy_once(make_runtime, policies, pg_store_url):
    first = make_runtime(store_url=pg_store_url)
    second = make_runtime(store_url=pg_store_url)
    for i in range(10):
        first.accessor.Site.objects.create(name=f"p{i}", behaviour="policy-child")
    engines = [{e.name: e for e in rt.engines()}["policies"] for rt in (first, second)]
    assert all(e.claims is not None for e in engines)
    threads = [threading.Thread(target=e.run_pass) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.run_pass()
    creates = Counter(c[4] for c in policies.CALLS if c[1] == "create")
    assert set(creates) == {f"p{i}" for i in range(10)} and max(creates.values()) == 1
    assert first.accessor.Slice.objects.count() == 10  # one child each, never two


def test_one_runtime_runs_a_pull_step_per_interval(make_runtime, policies, pg_store_url, clock):
    import xrt_policy.pull as pull

    runtimes = [make_runtime(store_url=pg_store_url) for _ in range(2)]
    engines = [{e.name: e for e in rt.engines()}["pull"] for rt in runtimes]
    for e in engines:
        e.run_pass()
    assert len(pull.CALLS) == 1  # the second runtime found the step claimed
    clock.advance(60)
    for e in engines:
        e.run_pass()
    assert len(pull.CALLS) == 2


def test_until_idle_waits_for_objects_held_elsewhere_then_says_who_holds_them(
    make_runtime, engine_steps, clock
):
    rt = make_runtime(sync={"claims": True, "claim_ttl": 3600})
    site = rt.accessor.Site.objects.create(name="s")
    rt.accessor.Site.objects.create(name="free")
    other = _other_process(rt, clock, host="elsewhere.example", pid=4242)
    other.claim([("Site", site.id)])
    started = time.monotonic()
    summary = rt.run_until_idle(timeout=1.0)
    assert time.monotonic() - started >= 1.0  # it waited for the held object
    assert summary.succeeded == 1 and summary.exit_code == 1
    assert summary.describe_held() == (
        "1 object(s) held by other processes: 1 by elsewhere.example pid 4242 (sync)"
    )


def test_until_idle_finishes_what_another_process_releases(make_runtime, engine_steps, clock):
    rt = make_runtime(sync={"claims": True, "claim_ttl": 3600})
    site = rt.accessor.Site.objects.create(name="s")
    other = _other_process(rt, clock, host="elsewhere.example", pid=4242)
    other.claim([("Site", site.id)])
    timer = threading.Timer(0.5, lambda: other.release([("Site", site.id)]))
    timer.start()
    summary = rt.run_until_idle(timeout=30)
    timer.join()
    assert summary.exit_code == 0 and summary.succeeded == 1 and not summary.held


def test_until_idle_does_not_wait_for_calls_another_process_abandoned(
    make_runtime, engine_steps, clock
):
    rt = make_runtime(sync={"claims": True, "claim_ttl": 3600})
    site = rt.accessor.Site.objects.create(name="s")
    other = _other_process(rt, clock, host="elsewhere.example", pid=4242)
    other.claim([("Site", site.id)])
    with rt.accessor.store.write() as conn:
        other.mark_abandoned([("Site", site.id)], conn)
    summary = rt.run_until_idle()  # no timeout: it must still end
    assert summary.exit_code == 1
    assert "1 of them abandoned calls" in summary.describe_held()


def test_status_shows_processes_and_their_claims(make_runtime, engine_steps, clock):
    from xos_runtime.engines.status import collect_status

    rt = make_runtime(sync={"claims": True, "claim_ttl": 30})
    site = rt.accessor.Site.objects.create(name="s")
    other = _other_process(rt, clock, host="elsewhere.example", pid=4242)
    other.claim([("Site", site.id)])
    (p,) = collect_status(rt.accessor, clock.now).processes
    assert (p.host, p.pid, p.state, p.claims, p.abandoned) == (
        "elsewhere.example",
        4242,
        "running",
        {"sync": 1},
        0,
    )
    clock.advance(31)
    (p,) = collect_status(rt.accessor, clock.now).processes
    assert p.state == "expired"


def test_a_second_run_is_refused_when_claims_are_off(installed_dists, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    env = _cli_env(installed_dists)
    config = _cli_config(tmp_path, "alone", url, claims=False)
    cmd = [sys.executable, "-m", "xos_runtime"]
    first = subprocess.Popen([*cmd, "run", "-C", str(config)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:  # until the first one has registered
            try:
                acc = connect(url)
                with acc.store.read() as conn:
                    if list(conn.execute(acc.store.schema.processes.select())):
                        break
                acc.close()
            except StoreError:
                pass
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        acc.close()
        second = subprocess.run(
            [*cmd, "run", "-C", str(config), "--once"], env=env, capture_output=True, text=True
        )
        assert second.returncode == 2
        line = second.stderr.strip().splitlines()[-1]  # after a config warning
        assert line.startswith("xos-runtime: error: store sqlite:///")
        assert f"pid {first.pid}" in line and "sync.claims: false" in line
        # other commands and scripts keep working next to it
        listed = subprocess.run(
            [*cmd, "objects", "-C", str(config), "list", "Site"], env=env, capture_output=True
        )
        assert listed.returncode == 0
    finally:
        first.terminate()
        assert first.wait(30) == 0
    # once it is gone, a run may start
    again = subprocess.run(
        [*cmd, "run", "-C", str(config), "--once"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr


def test_a_failure_stored_by_another_process_holds_dependents_here(
    make_runtime, engine_steps, clock
):
    rt = make_runtime(sync={"claims": True})
    site = rt.accessor.Site.objects.create(name="s", behaviour="fail")
    sl = rt.accessor.Slice.objects.create(name="sl", site=site)
    other = make_runtime(sync={"claims": True})  # a second runtime on the same store
    assert other.engines()[0].run_pass().failed == {("Site", site.id)}
    report = rt.engines()[0].run_pass()  # the site backs off; its slice waits with it
    assert report.attempted == 0
    assert rt.accessor.Slice.objects.get(id=sl.id).backend_status.startswith(
        f"Failed due to error in model Site id {site.id}"
    )
    assert [c["name"] for c in engine_steps.CALLS] == ["s"]


def test_outcomes_are_stored_while_a_long_pass_runs(make_runtime, engine_steps):
    rt = make_runtime(sync={"claims": True, "workers": 2})
    sites = [
        rt.accessor.Site.objects.create(name=f"s{i}", behaviour="sleep:100") for i in range(12)
    ]
    engine = rt.engines()[0]
    passing = threading.Thread(target=engine.run_pass)
    passing.start()
    deadline = time.monotonic() + 30
    seen = 0
    while passing.is_alive() and time.monotonic() < deadline:
        seen = sum(1 for s in sites if rt.accessor.Site.objects.get(id=s.id).enacted is not None)
        if seen >= 2:
            break
        time.sleep(0.01)
    assert passing.is_alive() and 2 <= seen < 12  # progress is visible before the pass ends
    passing.join(30)
    assert all(rt.accessor.Site.objects.get(id=s.id).enacted is not None for s in sites)


def test_a_claim_with_a_row_filter_skips_what_is_no_longer_pending(make_runtime, engine_steps):
    rt = make_runtime(sync={"claims": True})
    done, todo = _sites(rt, 2, behaviour="ok")
    assert rt.engines()[0].run_pass().succeeded == 2
    rt.accessor.Site.objects.get(id=todo.id).save()  # changed again: pending
    lease = Lease(rt.accessor.store, ttl=30)
    lease.register()
    claims = Claims(lease, "sync")
    keys = [("Site", done.id), ("Site", todo.id)]
    with rt.accessor.store.write() as conn:
        got = claims.claim_in(conn, keys, where=sync_pending(False))
    assert got == {("Site", todo.id)}  # the synced one costs no claim
    with rt.accessor.store.write() as conn:  # nothing of these is deleted
        assert claims.claim_in(conn, keys, where=sync_pending(True)) == set()
    assert set(claims.holders(keys)) == {("Site", todo.id)}
    lease.close()


def test_each_process_starts_a_pass_with_its_own_share(make_runtime, engine_steps):
    first = make_runtime(sync={"claims": True, "workers": 1})
    second = make_runtime(store_url=first.settings.accessor.endpoint, sync={"workers": 1})
    sites = _sites(first, 40, behaviour="ok")
    engines = [first.engines()[0], second.engines()[0]]
    for e in engines:
        e.claims.lease.register()
    for e in engines:
        e.claims.lease.reap(["sync"])  # each pass looks at who else is there
    shares = [e.claims.lease.share() for e in engines]
    assert sorted(shares) == [(0, 2), (1, 2)]
    rank = shares[0][0]
    assert engines[0].run_pass().succeeded == 40  # alone in the end, it does them all...
    keys = {s.name: ("Site", s.id) for s in sites}
    order = [keys[c["name"]] for c in engine_steps.CALLS]
    mine = [k for k in order if _share_of(k, 2) == rank]
    assert 5 < len(mine) < 35
    assert order[: len(mine)] == mine  # ...but its own share first
