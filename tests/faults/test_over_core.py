"""Runtimes over a core: real `xos-runtime run` processes whose `accessor.endpoint` is a
real `xos-runtime core serve` process on the store, judged by the call log and the store as
the other fault tests are (`test_faults.finish`): every object synced, exactly once unless
a call was in flight when something broke, in dependency order, never two calls of one
object at once, every process exits 0 on SIGTERM."""

from __future__ import annotations

import pytest

from .harness import Cluster
from .test_faults import W, done_within, finish

pytestmark = pytest.mark.slow


def test_two_runtimes_share_the_work_over_a_core(make_cluster):
    cluster: Cluster = make_cluster("sqlite", workers=W, step_delay=0.003)
    keys = cluster.seed_chains(60)  # 240 objects
    cluster.start_core()
    for _ in range(2):
        cluster.start()
    problems = done_within(cluster, 90)
    log = finish(cluster, expected=keys, exactly_once=True, problems=problems)
    assert len({c.pid for c in log.calls}) == 2, "both runtimes took a share of the work"
