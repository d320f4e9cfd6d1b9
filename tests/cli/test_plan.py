"""`xos-runtime plan`: a dry run of the next pass, as real processes over a real store.

One scenario (built once for the module): a `run --once` leaves a Site in error, one
deferred, one failed permanently and one deferred for a moment (ready again: a retry); then
new objects make a three-wave chain, a Slice of the permanently failed Site waits, a Slice
and its Instance are deleted (dependents first) and a deleted Site waits for its policy's
`handle_delete`. Every step and policy call is logged to a file: `plan` must add no line to
it, and must leave every row (and the SQLite file) as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import xos_runtime

from .conftest import REPO_ROOT, Cli, Project, config_text, make_project, run_process

XPROTO = """\
message Site (XOSBase) {
    required string name = 1;
}
message User (XOSBase) {
    required string email = 1;
    required manytoone site->Site:users = 2;
}
message Slice (XOSBase) {
    required string name = 1;
    required manytoone site->Site:slices = 2;
}
message Instance (XOSBase) {
    required string name = 1;
    required manytoone slice->Slice:instances = 2;
}
"""

#: Sync steps whose Site step fails by name; every call is logged (`XRT_PLAN_LOG`).
STEPS = """
import json
import os

from xos_runtime import DeferredException, PermanentException, SyncStep


def log(what, obj):
    with open(os.environ["XRT_PLAN_LOG"], "a") as f:
        f.write(json.dumps([what, type(obj).__name__, obj.id]) + "\\n")


class Logged:
    def sync_record(self, obj):
        log("sync", obj)

    def delete_record(self, obj):
        log("delete", obj)


class SyncSite(Logged, SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        log("sync", obj)
        if obj.name == "bad":
            raise RuntimeError("backend refused bad")
        if obj.name == "later":
            raise DeferredException("not yet", delay=600)
        if obj.name == "soon":
            raise DeferredException("in a moment", delay=0.01)
        if obj.name == "never":
            raise PermanentException("never accepted")


class SyncUser(Logged, SyncStep):
    observes = "User"


class SyncSlice(Logged, SyncStep):
    observes = "Slice"


class SyncInstance(Logged, SyncStep):
    observes = "Instance"
"""

POLICIES = """
import json
import os

from xos_runtime import ModelPolicy


def log(what, obj):
    with open(os.environ["XRT_PLAN_LOG"], "a") as f:
        f.write(json.dumps([what, type(obj).__name__, obj.id]) + "\\n")


class SitePolicy(ModelPolicy):
    model_name = "Site"

    def handle_create(self, obj):
        log("handle_create", obj)

    def handle_update(self, obj):
        log("handle_update", obj)

    def handle_delete(self, obj):
        log("handle_delete", obj)
"""

SETTINGS = """\
steps_dir: steps
model_policies_dir: policies
sync:
  backoff: {initial: 600, factor: 2, max: 3600, jitter: 0}
"""


def _plan_project(parent: Path) -> Project:
    project = make_project(parent)
    project.write_xproto(XPROTO)
    for folder, text in (("steps", STEPS), ("policies", POLICIES)):
        (project.root / folder).mkdir()
        (project.root / folder / f"{folder}.py").write_text(textwrap.dedent(text))
    project.write_config(config_text(SETTINGS))
    return project


def _env(log: Path) -> dict[str, str]:
    return {"XRT_PLAN_LOG": str(log)}


def _rows(store: Path) -> list[str]:
    """Every row of every table of the SQLite store, as SQL."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _file_state(store: Path) -> dict[str, str | None]:
    """The bytes of the store and of its write-ahead log (hashed)."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal"):
        path = Path(f"{store}{suffix}")
        out[suffix] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    return out


class Scenario:
    def __init__(self, project: Project, log: Path, ids: dict[str, int]):
        self.project = project
        self.log = log
        self.ids = ids
        self.calls_before = log.read_text().splitlines()
        self.rows_before = _rows(project.store)
        self.files_before = _file_state(project.store)
        self.started = time.time()
        env = _env(log)
        self.json_proc = run_process("plan", "-C", project.config, "--json", env=env)
        self.text_proc = run_process("plan", "-C", project.config, env=env)

    @property
    def plan(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.json_proc.stdout)
        return result

    def key(self, name: str) -> tuple[str, int]:
        model = name.partition(":")[0]
        return model, self.ids[name]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    project = _plan_project(tmp_path_factory.mktemp("plan"))
    log = project.root / "calls.jsonl"
    log.write_text("")
    ids: dict[str, int] = {}
    os.environ["XRT_PLAN_LOG"] = str(log)  # the in-process accessor below loads the plugins
    try:
        acc = xos_runtime.connect(project.config)
        try:
            sites = {n: acc.Site.objects.create(name=n) for n in ("ok", "bad", "later", "soon")}
            sites["never"] = acc.Site.objects.create(name="never")
            sites["gone"] = acc.Site.objects.create(name="gone")
            sl2 = acc.Slice.objects.create(name="sl2", site=sites["ok"])
            i3 = acc.Instance.objects.create(name="i3", slice=sl2)
            u_bad = acc.User.objects.create(email="u@bad", site=sites["bad"])
            ids.update({f"Site:{n}": s.id for n, s in sites.items()})
            ids.update({"Slice:sl2": sl2.id, "Instance:i3": i3.id, "User:u_bad": u_bad.id})
        finally:
            acc.close()
        first = run_process("run", "--once", "-C", project.config, env=_env(log))
        assert first.returncode == 1, first.stderr  # bad and never are in error
        acc = xos_runtime.connect(project.config)
        try:
            fresh = acc.Site.objects.create(name="fresh")
            u4 = acc.User.objects.create(email="u@fresh", site=fresh)
            sl4 = acc.Slice.objects.create(name="sl4", site=fresh)
            i4 = acc.Instance.objects.create(name="i4", slice=sl4)
            sl_never = acc.Slice.objects.create(
                name="sl-never", site=acc.Site.objects.get(id=ids["Site:never"])
            )
            ok = acc.Site.objects.get(id=ids["Site:ok"])
            ok.name = "ok2"
            ok.save()
            acc.Slice.objects.get(id=ids["Slice:sl2"]).delete()  # and its Instance i3
            acc.Site.objects.get(id=ids["Site:gone"]).delete()
            ids.update({"Site:fresh": fresh.id, "User:u4": u4.id, "Slice:sl4": sl4.id})
            ids.update({"Instance:i4": i4.id, "Slice:sl-never": sl_never.id})
        finally:
            acc.close()
    finally:
        del os.environ["XRT_PLAN_LOG"]
    # Wait (on a condition, not a sleep) until the moment's deferral of `soon` is over.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        acc = xos_runtime.connect(project.url)
        try:
            register = json.loads(acc.Site.objects.get(name="soon").backend_register)
        finally:
            acc.close()
        if register["next_run"] <= time.time():
            break
    return Scenario(project, log, ids)


def _wave_keys(plan: dict[str, Any]) -> list[tuple[str, set[tuple[str, int]]]]:
    return [
        (w["phase"], {(g["model"], i) for g in w["objects"] for i in g["ids"]})
        for w in plan["waves"]
    ]


def test_waves_follow_the_dependencies(scenario: Scenario) -> None:
    assert scenario.json_proc.returncode == 0, scenario.json_proc.stderr
    k = scenario.key
    assert _wave_keys(scenario.plan) == [
        ("sync", {k("Site:ok"), k("Site:soon"), k("Site:fresh")}),
        ("sync", {k("User:u4"), k("Slice:sl4")}),
        ("sync", {k("Instance:i4")}),
        ("delete", {k("Instance:i3")}),  # dependents first
        ("delete", {k("Slice:sl2")}),
    ]
    assert [w["wave"] for w in scenario.plan["waves"]] == [1, 2, 3, 4, 5]
    first = {g["model"]: g for g in scenario.plan["waves"][0]["objects"]}
    assert first["Site"]["retries"] == [scenario.ids["Site:soon"]]  # its deferral is over


def test_held_back_names_the_root_cause(scenario: Scenario) -> None:
    held = {(h["model"], h["id"]): h for h in scenario.plan["held_back"]}
    k = scenario.key
    assert set(held) == {k("User:u_bad"), k("Slice:sl-never"), k("Site:gone")}
    u = held[k("User:u_bad")]
    assert u["by"] == {"model": "Site", "id": scenario.ids["Site:bad"]}
    assert (u["phase"], u["cause"], u["message"]) == ("sync", "error", "backend refused bad")
    assert held[k("Slice:sl-never")]["by"] == {"model": "Site", "id": scenario.ids["Site:never"]}
    gone = held[k("Site:gone")]
    assert (gone["phase"], gone["by"], gone["cause"]) == ("delete", None, "policies")


def test_backing_off_says_until_when(scenario: Scenario) -> None:
    waiting = {w["id"]: w for w in scenario.plan["backing_off"]}
    bad, later = waiting[scenario.ids["Site:bad"]], waiting[scenario.ids["Site:later"]]
    assert set(waiting) == {scenario.ids["Site:bad"], scenario.ids["Site:later"]}
    assert (bad["state"], bad["failures"], bad["message"]) == ("error", 1, "backend refused bad")
    assert later["state"] == "deferred" and later["message"] == "not yet"
    for w in (bad, later):  # initial backoff 600 s, no jitter; the deferral asked 600 s too
        assert scenario.started < w["until"] <= scenario.started + 601
        assert 500 < w["in_seconds"] <= 600
    never = scenario.plan["not_retried"]
    assert [(w["id"], w["message"]) for w in never] == [
        (scenario.ids["Site:never"], "never accepted")
    ]


def test_policies_pending(scenario: Scenario) -> None:
    runs = {(p["action"], p["id"]): p["policies"] for p in scenario.plan["policies"]}
    assert runs == {
        ("create", scenario.ids["Site:fresh"]): ["SitePolicy"],
        ("update", scenario.ids["Site:ok"]): ["SitePolicy"],
        ("delete", scenario.ids["Site:gone"]): ["SitePolicy"],
    }


def test_json_shape_and_counts(scenario: Scenario) -> None:
    plan = scenario.plan
    assert list(plan) == [
        "now",
        "waves",
        "held_back",
        "backing_off",
        "not_retried",
        "policies",
        "counts",
    ]
    assert plan["counts"] == {
        "sync": 6,
        "delete": 2,
        "held_back": 3,
        "backing_off": 2,
        "not_retried": 1,
        "policies": 3,
    }
    assert list(plan["waves"][0]) == ["wave", "phase", "objects"]
    assert list(plan["waves"][0]["objects"][0]) == ["model", "ids", "retries"]
    assert list(plan["held_back"][0]) == ["model", "id", "phase", "by", "cause", "message"]
    assert list(plan["backing_off"][0]) == [
        "model",
        "id",
        "phase",
        "state",
        "until",
        "in_seconds",
        "failures",
        "message",
    ]
    assert list(plan["policies"][0]) == ["model", "id", "action", "policies", "last_error"]


def test_text_output(scenario: Scenario) -> None:
    proc = scenario.text_proc
    assert (proc.returncode, proc.stderr) == (0, "")
    ids = scenario.ids
    lines = proc.stdout.splitlines()
    sites = ", ".join(str(i) for i in sorted([ids["Site:ok"], ids["Site:soon"], ids["Site:fresh"]]))
    assert lines[0] == f"wave 1:  sync Site {sites} (retry: {ids['Site:soon']})"
    assert f"wave 4:  delete Instance {ids['Instance:i3']}" in lines
    assert (
        f"  User {ids['User:u_bad']} held back by Site {ids['Site:bad']} "
        "(error: backend refused bad)"
    ) in lines
    assert (
        f"  Site {ids['Site:gone']} (delete): its deletion waits for its policies' handle_delete"
    ) in lines
    (bad,) = [line for line in lines if line.startswith(f"  Site {ids['Site:bad']} until ")]
    assert bad.endswith(": error, 1 failure(s): backend refused bad")
    assert "(in 10min)" in bad or "(in 9min)" in bad
    assert lines[-1] == (
        "plan: 6 to sync, 2 to delete, 3 held back, 2 backing off, 1 not retried, "
        "3 to police (in 5 wave(s))"
    )


def test_plan_changes_nothing_and_calls_nothing(scenario: Scenario) -> None:
    assert scenario.calls_before  # the run before did call the steps (the log works)
    assert scenario.log.read_text().splitlines() == scenario.calls_before
    assert _rows(scenario.project.store) == scenario.rows_before
    assert _file_state(scenario.project.store) == scenario.files_before


def test_nothing_pending_is_one_line(project: Project, cli: Cli) -> None:
    result = cli("plan", "-C", project.config)
    assert (result.code, result.out) == (
        0,
        "nothing to do: no object to sync, delete or police, and none waiting\n",
    )
    assert cli("plan", "--json", "-C", project.config).json()["counts"]["sync"] == 0


def test_config_option_anywhere(
    project: Project, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("plan", "--json", "-C", project.config).code == 0
    assert cli("plan", "-C", project.config, "--json").code == 0
    monkeypatch.setenv("XOS_CONFIG_FILE", os.fspath(project.config))
    assert cli("plan").code == 0


def test_bad_config_exits_2(project: Project, cli: Cli) -> None:
    bad = project.write_config("name: x\nmodels_dir: models\nbogus: 1\n", "bad.yaml")
    result = cli("plan", "-C", bad)
    assert result.code == 2 and "bogus" in result.err


def test_a_broken_plugin_is_a_warning(tmp_path: Path, installed_dists: dict[str, Path]) -> None:
    project = _plan_project(tmp_path)
    log = project.root / "calls.jsonl"
    env = {"XRT_PLAN_LOG": str(log)}
    assert (
        run_process("objects", "create", "Site", "name=s", "-C", project.config, env=env).returncode
        == 0
    )
    env["PYTHONPATH"] = os.pathsep.join([str(installed_dists["xrt-broken"]), str(REPO_ROOT)])
    proc = run_process("plan", "-C", project.config, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "xrt-broken" in proc.stderr and "failed to load" in proc.stderr
    assert "`plan` goes on without it" in proc.stderr
    assert json.loads(proc.stdout)["waves"][0]["objects"] == [
        {"model": "Site", "ids": [1], "retries": []}
    ]
    assert not log.exists()


def test_on_postgresql(tmp_path: Path, pg_store_url: str) -> None:
    project = _plan_project(tmp_path)
    project.write_config(
        config_text(SETTINGS).replace("sqlite:///store.db", json.dumps(pg_store_url))
    )
    env = {"XRT_PLAN_LOG": str(project.root / "calls.jsonl")}
    os.environ.update(env)
    try:
        acc = xos_runtime.connect(project.config)
        try:
            site = acc.Site.objects.create(name="s")
            user = acc.User.objects.create(email="u", site=site)
        finally:
            acc.close()
    finally:
        del os.environ["XRT_PLAN_LOG"]
    proc = run_process("plan", "-C", project.config, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert _wave_keys(json.loads(proc.stdout)) == [
        ("sync", {("Site", site.id)}),
        ("sync", {("User", user.id)}),
    ]


def test_long_id_lists_are_abbreviated() -> None:
    from xos_runtime.cli.plan import format_ids

    assert format_ids([3, 1, 2, 7, 9, 10]) == "1-3, 7, 9, 10"
    assert format_ids(list(range(1, 1001))) == "1-1000"
    scattered = list(range(1, 2000, 2))  # 1000 ids, no runs
    assert format_ids(scattered) == "1, 3, 5, 7, 9, 11, 13, 15, ... (1,000 in all)"
