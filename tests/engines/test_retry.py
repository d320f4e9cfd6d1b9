"""The one retry rule (`engines/retry.py`) the sync, policy and event engines share.

`now` and the random source are arguments: no clock, no waiting.
"""

from __future__ import annotations

import pytest

from xos_runtime.config import BackoffSettings
from xos_runtime.engines.retry import MIN_WAIT, next_retry

NOW = 1_800_000_000.0
NO_JITTER = BackoffSettings(initial=2.0, factor=3.0, max=50.0, jitter=0.0)


def test_each_counted_failure_grows_the_wait_up_to_the_cap():
    failures, waits = 0, []
    for _ in range(5):
        retry = next_retry(NO_JITTER, failures, now=NOW)
        assert retry.failures == failures + 1
        assert retry.at == NOW + retry.wait
        failures = retry.failures
        waits.append(retry.wait)
    assert waits == [2.0, 6.0, 18.0, 50.0, 50.0]


@pytest.mark.parametrize("before", [0, 3])
def test_a_deferral_does_not_count_and_waits_the_first_step(before: int):
    retry = next_retry(NO_JITTER, before, now=NOW, deferred=True)
    assert (retry.failures, retry.wait, retry.at) == (before, 2.0, NOW + 2.0)


def test_a_deferral_with_its_own_delay_waits_that_and_draws_no_jitter():
    def rand() -> float:
        raise AssertionError("no jitter is drawn for a given delay")

    retry = next_retry(NO_JITTER, 2, now=NOW, deferred=True, delay=7.5, rand=rand)
    assert (retry.failures, retry.wait, retry.at) == (2, 7.5, NOW + 7.5)


def test_a_retry_is_always_in_the_future():
    retry = next_retry(NO_JITTER, 0, now=NOW, deferred=True, delay=0.0)
    assert retry.wait == 0.0 and retry.at == NOW + MIN_WAIT


def test_jitter_comes_from_the_random_source():
    jittery = BackoffSettings(initial=10.0, factor=2.0, max=100.0, jitter=0.5)
    low = next_retry(jittery, 0, now=NOW, rand=lambda: 0.0).wait
    high = next_retry(jittery, 0, now=NOW, rand=lambda: 1.0).wait
    assert low < high
    assert low == jittery.delay(1, 0.0) and high == jittery.delay(1, 1.0)
