"""Outcome classification: what a call raised (or its timeout) becomes in the store."""

from __future__ import annotations

import attrs
import pytest

from xos_runtime.engines.outcome import BACKEND_CODES, Outcome, classify, success
from xos_runtime.exceptions import DeferredException, InnocuousException, PermanentException


def test_a_call_that_returned_is_a_success():
    outcome = classify(None, False, 0.25, False, 10.0)
    assert outcome == Outcome("success", "OK", 1, 0.25, False, None)
    assert outcome.ok and not outcome.failed
    assert success(0.25) == outcome and hash(success(0.25)) == hash(outcome)


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (RuntimeError("backend down"), "error", 2),
        (InnocuousException("backend down"), "innocuous", 1),
        (PermanentException("backend down"), "permanent", 2),
        (DeferredException("backend down"), "deferred", 0),
    ],
)
def test_each_exception_family_has_its_kind_and_backend_code(
    error: BaseException, kind: str, code: int
):
    outcome = classify(error, False, 1.5, False, None)
    assert (outcome.kind, outcome.code, outcome.message) == (kind, code, "backend down")
    assert outcome.duration == 1.5
    assert outcome.failed and not outcome.ok  # every failure holds dependents back


def test_an_innocuous_failure_is_in_sync_yet_not_ok():
    outcome = classify(InnocuousException("known quirk"), False, 0.0, False, None)
    assert outcome.code == BACKEND_CODES["success"] and not outcome.ok


def test_a_subclass_of_an_outcome_exception_is_classified_by_its_family():
    class QuotaExceeded(PermanentException):
        pass

    assert classify(QuotaExceeded("no quota"), False, 0.0, False, None).kind == "permanent"


def test_a_deferral_carries_its_delay_as_the_retry_time():
    outcome = classify(DeferredException("not yet", delay=30.0), False, 0.0, False, None)
    assert (outcome.kind, outcome.retry_at) == ("deferred", 30.0)
    assert classify(DeferredException("not yet"), False, 0.0, False, None).retry_at is None
    assert classify(RuntimeError("x"), False, 0.0, False, None).retry_at is None


def test_an_exception_without_text_is_named_by_its_type():
    assert classify(KeyError(), False, 0.0, False, None).message == "KeyError"
    assert classify(PermanentException(), False, 0.0, False, None).message == "PermanentException"


def test_a_key_error_is_named_by_its_type():
    """`str(KeyError('name'))` is `'name'`: cryptic in a log line and in `backend_status`."""
    assert classify(KeyError("name"), False, 0.0, False, None).message == "KeyError: 'name'"
    assert classify(RuntimeError("plain text"), False, 0.0, False, None).message == "plain text"


def test_a_timeout_names_the_call_and_its_limit():
    sync = classify(None, True, 5.0, False, 5.0)
    assert (sync.kind, sync.code, sync.message) == ("timeout", 2, "sync_record timed out after 5s")
    delete = classify(None, True, 2.5, True, 2.5)
    assert delete.message == "delete_record timed out after 2.5s" and delete.deleted
    pull = classify(None, True, 60.0, False, 60.0, call="pull_records")
    assert pull.message == "pull_records timed out after 60s"


def test_a_timeout_wins_over_an_error():
    outcome = classify(RuntimeError("late failure"), True, 5.0, False, 5.0)
    assert outcome.kind == "timeout"


def test_a_deletion_is_marked_as_such():
    assert classify(None, False, 0.0, True, None).deleted
    assert classify(RuntimeError("x"), False, 0.0, True, None).deleted


def test_outcomes_are_frozen_records():
    outcome = classify(None, False, 0.0, False, None)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        outcome.kind = "error"  # type: ignore[misc]


def test_every_kind_a_call_can_end_in_has_a_backend_code():
    kinds = {"success", "deferred", "innocuous", "permanent", "error", "timeout"}
    assert set(BACKEND_CODES) == kinds
    assert {BACKEND_CODES[k] for k in ("permanent", "error", "timeout")} == {2}
