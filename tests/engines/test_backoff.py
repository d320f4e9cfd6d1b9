"""The retry rule kept in `backend_register`: backoff growth, cap, jitter and readiness.

Everything takes `now` and a random source as arguments, so the tests pass numbers: no
clock, no waiting.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from xos_runtime.config import BackoffSettings
from xos_runtime.engines.register import (
    data_version,
    failure_register,
    is_ready,
    read_register,
    success_register,
    success_text,
    version_of,
)

NOW = 1_800_000_000.0
NO_JITTER = BackoffSettings(initial=2.0, factor=3.0, max=50.0, jitter=0.0)


def fail(register: dict[str, Any], kind: str = "error", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("version", 10.0)
    kwargs.setdefault("backoff", NO_JITTER)
    return failure_register(register, kind=kind, **kwargs)


def waits(register: dict[str, Any], now: float = NOW) -> float:
    return register["next_run"] - now


# -- reading the register ---------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", "42", '"text"'])
def test_an_unreadable_register_counts_as_empty(text: str | None):
    assert read_register(text) == {}


def test_a_register_is_read_as_stored():
    stored = {"failures": 2, "exponent": 2, "next_run": NOW, "version": 3.5}
    assert read_register(json.dumps(stored)) == stored


def test_the_data_version_is_the_newest_of_updated_and_changed_by_policy():
    assert version_of(5.0, 7.0) == 7.0
    assert version_of(9.0, 7.0) == 9.0
    assert version_of(None, None) == 0.0
    assert version_of(None, 4.0) == 4.0
    assert data_version(SimpleNamespace(updated=3.0, changed_by_policy=None)) == 3.0


# -- backoff ----------------------------------------------------------------------------------


def test_errors_back_off_exponentially_up_to_the_cap():
    register: dict[str, Any] = {}
    seen = []
    for _ in range(6):
        register = fail(register)
        seen.append((register["failures"], register["exponent"], waits(register)))
    assert seen == [
        (1, 1, 2.0),
        (2, 2, 6.0),
        (3, 3, 18.0),
        (4, 4, 50.0),  # 54 capped
        (5, 5, 50.0),
        (6, 6, 50.0),
    ]


@pytest.mark.parametrize(("rand", "wait"), [(0.0, 7.5), (0.5, 10.0), (1.0, 12.5)])
def test_jitter_spreads_the_wait_by_the_random_draw(rand: float, wait: float):
    backoff = BackoffSettings(initial=10.0, factor=2.0, max=100.0, jitter=0.25)
    register = fail({}, backoff=backoff, rand=lambda: rand)
    assert waits(register) == pytest.approx(wait)


def test_jitter_never_goes_past_the_cap():
    backoff = BackoffSettings(initial=10.0, factor=2.0, max=40.0, jitter=0.5)
    register = fail({"exponent": 9}, backoff=backoff, rand=lambda: 1.0)
    assert waits(register) == pytest.approx(40.0)


def test_every_failure_kind_but_deferred_grows_the_exponent():
    for kind in ("error", "timeout", "innocuous", "permanent"):
        assert fail({"exponent": 2}, kind)["exponent"] == 3, kind
    assert fail({"exponent": 2}, "deferred")["exponent"] == 2


def test_a_deferral_waits_the_first_step_or_its_own_delay():
    grown = {"failures": 4, "exponent": 4}
    assert waits(fail(grown, "deferred")) == 2.0  # not the grown 50 s
    assert waits(fail(grown, "deferred", delay=30.0)) == 30.0
    assert fail(grown, "deferred")["failures"] == 5  # it still counts as a failure


def test_a_delay_given_by_the_step_replaces_the_backoff():
    assert waits(fail({"exponent": 3}, "error", delay=7.0)) == 7.0


def test_the_next_run_is_always_in_the_future():
    register = fail({}, "deferred", delay=0.0)
    assert register["next_run"] > NOW
    assert not is_ready(register, 10.0, NOW)


def test_a_failure_records_when_and_which_version_failed_and_keeps_the_last_success():
    register = fail({"last_success": NOW - 100}, version=42.0, now=NOW)
    assert register["last_failure"] == NOW
    assert register["last_success"] == NOW - 100
    assert register["version"] == 42.0
    assert "permanent" not in register


def test_success_resets_the_backoff_and_keeps_the_last_failure():
    failed = fail(fail({}), now=NOW)
    ok = success_register(failed, NOW + 60)
    assert ok == {
        "failures": 0,
        "exponent": 0,
        "next_run": 0,
        "last_success": NOW + 60,
        "last_failure": NOW,
    }
    assert is_ready(ok, 0.0, NOW + 60)
    assert waits(fail(ok)) == 2.0  # the next failure starts from the first step again


def test_the_stored_text_of_a_success_is_its_register_as_json():
    for before in ({}, fail(fail({}), now=NOW), {"last_failure": 1}):
        text = success_text(before, NOW + 0.1)
        assert json.loads(text) == success_register(before, NOW + 0.1)
        assert text == json.dumps(success_register(before, NOW + 0.1))


# -- readiness --------------------------------------------------------------------------------


def test_an_object_that_never_failed_is_ready():
    assert is_ready({}, 0.0, NOW)


def test_a_failed_object_is_ready_when_its_backoff_is_over():
    register = fail({}, version=10.0)  # next_run = NOW + 2
    assert not is_ready(register, 10.0, NOW + 1.999)
    assert is_ready(register, 10.0, NOW + 2.0)


def test_a_permanent_failure_waits_for_a_change_not_for_time():
    register = fail({}, "permanent", version=10.0)
    assert register["permanent"] is True
    assert not is_ready(register, 10.0, NOW + 1e9)
    assert is_ready(register, 10.5, NOW)  # changed by a user or a policy since


def test_a_changed_version_makes_a_failed_object_ready_at_once():
    register = fail({"exponent": 5}, version=10.0)
    assert not is_ready(register, 10.0, NOW + 1)
    assert not is_ready(register, 9.0, NOW + 1)  # an older version is no change
    assert is_ready(register, 10.001, NOW + 1)


def test_a_register_without_a_version_goes_by_time_only():
    register = {"next_run": NOW + 5}
    assert not is_ready(register, 1e12, NOW)
    assert is_ready(register, 0.0, NOW + 5)
