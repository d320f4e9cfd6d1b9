"""The run summary's counts add up, and each says what it counts."""

from __future__ import annotations

import re

import pytest

from .conftest import Project, config_text, run_process

PULL = """
from xos_runtime import PullStep


class PullOk(PullStep):
    def pull_records(self):
        pass


class PullBroken(PullStep):
    def pull_records(self):
        raise RuntimeError("pull broke")
"""

SYNC = """
from xos_runtime import DeferredException, SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        if obj.name == "bad":
            raise RuntimeError("site broke")
        if obj.name == "later":
            raise DeferredException("not yet")


class SyncUser(SyncStep):
    observes = "User"

    def sync_record(self, obj):
        pass
"""

SUMMARY = re.compile(
    r"(?P<passes>\d+) pass\(es\): (?P<calls>\d+) call\(s\) \((?P<ok>\d+) succeeded, "
    r"(?P<failed>\d+) failed, (?P<deferred>\d+) deferred\); (?P<held>\d+) object\(s\) held back "
    r"by their dependencies; (?P<in_error>\d+) object\(s\) in error$"
)


@pytest.mark.parametrize("mode", ["--once", "--until-idle"])
def test_the_summary_adds_up(project: Project, mode: str) -> None:
    """With `--until-idle` the objects held back are held back again in the next pass:
    each is counted once."""
    for folder, text in (("pull", PULL), ("sync", SYNC)):
        (project.root / folder).mkdir()
        (project.root / folder / "steps.py").write_text(text)
    project.write_config(config_text("pull_steps_dir: pull\nsteps_dir: sync\n"))
    for fields in (["name=good"], ["name=bad"], ["name=later"]):
        assert (
            run_process("objects", "create", "Site", *fields, "-C", project.config).returncode == 0
        )
    for site in (1, 2, 2, 3):  # one user of the good site, two of the bad one, one deferred
        args = ("objects", "create", "User", f"email=u{site}", f"site={site}")
        assert run_process(*args, "-C", project.config).returncode == 0
    proc = run_process("run", mode, "-C", project.config)
    assert proc.returncode == 1
    [match] = [m for line in proc.stderr.splitlines() if (m := SUMMARY.search(line))]
    n = {k: int(v) for k, v in match.groupdict().items()}
    passes = n.pop("passes")
    assert passes == 1 if mode == "--once" else passes >= 2
    # calls: 2 pull steps, 3 sites, the good site's user; the other 3 users were not called
    assert n == {
        "calls": 6,
        "ok": 3,  # PullOk, site 'good', user u1
        "failed": 2,  # PullBroken, site 'bad'
        "deferred": 1,  # site 'later'
        "held": 3,
        "in_error": 3,  # site 'bad' and its two users
    }
    assert n["calls"] == n["ok"] + n["failed"] + n["deferred"]
