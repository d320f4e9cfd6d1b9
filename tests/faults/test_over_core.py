"""Runtimes over a core: real `xos-runtime run` processes whose `accessor.endpoint` is a
real `xos-runtime core serve` process on the store, judged by the call log and the store as
the other fault tests are (`test_faults.finish`): every object synced, exactly once unless
a call was in flight when something broke, in dependency order, never two calls of one
object at once, every process exits 0 on SIGTERM."""

from __future__ import annotations

import pytest

from .harness import Cluster, Proc
from .test_faults import W, done_within, finish

pytestmark = pytest.mark.slow


def test_two_runtimes_share_the_work_over_a_core(make_cluster, backend):
    cluster: Cluster = make_cluster(backend, workers=W, step_delay=0.003)
    keys = cluster.seed_chains(60)  # 240 objects
    cluster.start_core()
    for _ in range(2):
        cluster.start()
    problems = done_within(cluster, 90)
    log = finish(cluster, expected=keys, exactly_once=True, problems=problems)
    assert len({c.pid for c in log.calls}) == 2, "both runtimes took a share of the work"


def test_core_stopped_and_restarted_mid_run(make_cluster):
    """The core goes away while two runtimes work, and comes back on the same port: they
    wait for it, and carry on; nothing is lost, and nothing is synced twice beyond a call
    in flight when it went."""
    cluster: Cluster = make_cluster("sqlite", workers=W, step_delay=0.02)
    # each request gives up after 0.5 s: the core stays away longer (seconds, to start
    # again), so the engines' own retries (`store.health.retrying`, the passes) carry the
    # outcomes and claims over
    cluster.core_retry_for = 0.5
    keys = cluster.seed_chains(50)  # 200 objects: about 2 s of calls over 4 workers
    cluster.start_core()
    procs = [cluster.start() for _ in range(2)]
    cluster.wait_for(lambda: len(cluster.calllog().calls) >= 40, 60, "40 calls made")
    cluster.stop_core()
    stopped_at = len(cluster.calllog().calls)
    cluster.start_core()
    problems = done_within(cluster, 90, " after the core came back")
    log = finish(cluster, expected=keys, problems=problems)
    assert len(log.calls) > stopped_at, "the runtimes carried on after the core came back"
    waited = [p.index for p in procs if "does not answer" in p.text()]
    assert waited, "the runtimes said that they waited for the core"


def test_sigkill_of_a_runtime_over_a_core(make_cluster):
    """A remote runtime killed mid-run: the core cannot see it die, so its objects are taken
    over once its lease has run out (`sync.claim_ttl`), and the other runtime finishes them."""
    ttl = 3.0
    cluster: Cluster = make_cluster("sqlite", workers=W, step_delay=0.02, claim_ttl=ttl)
    keys = cluster.seed_chains(40)  # 160 objects
    cluster.start_core()
    procs = [cluster.start() for _ in range(2)]

    def working() -> Proc | None:
        log = cluster.calllog()
        if len(log.calls) < 20:
            return None
        return next((p for p in procs if log.open_calls(p.pid)), None)

    victim = cluster.wait_for(working, 60, "a runtime with a call in flight", every=0.02)
    victim.kill()
    problems = done_within(cluster, 60, f" of the SIGKILL of pid {victim.pid}")
    finish(cluster, expected=keys, problems=problems)
