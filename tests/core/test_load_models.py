"""A synchronizer loads its models into the core (XOS's LoadModels): the store evolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Core, Project, snapshot

MODELS = "/xosapi/v1/models"

VSG = """\
option app_label = "vsg";

message VSGService (XOSBase) {
    required string name = 1 [max_length = 20];
    required manytoone site->Site:vsg_services = 2;
}
"""

VSG_V2 = VSG.replace(
    "    required manytoone site", "    optional int32 vlan = 3;\n    required manytoone site"
)


def _load(core: Core, text: str, user: str = "vsg", name: str = "vsg") -> dict:
    body = {"name": name, "xprotos": [{"filename": "vsg.xproto", "contents": text}]}
    r = core.call("POST", MODELS, user=user, json=body)
    return {"status": r.status_code, **r.json()}


def test_loaded_models_are_served_at_once_and_after_a_restart(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.add_users()
    core = Core(project)
    try:
        assert _load(core, VSG, user="alice")["status"] == 403  # synchronizers only
        loaded = _load(core, VSG)
        assert loaded["status"] == 200 and loaded["models"] == ["VSGService"], loaded
        site = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "s"}).json()
        r = core.call("POST", "/xosapi/v1/vsg/vsgservices", json={"name": "v", "site": site["id"]})
        assert r.status_code == 201, r.text
        assert "/xosapi/v1/vsg/vsgservices" in core.call("GET", "/openapi.json").json()["paths"]
        # the same models again change nothing; a new optional field is added
        assert _load(core, VSG)["models"] == []
        assert _load(core, VSG_V2)["models"] == ["VSGService"]
        r = core.call("PUT", f"/xosapi/v1/vsg/vsgservices/{r.json()['id']}", json={"vlan": 7})
        assert r.status_code == 200 and r.json()["vlan"] == 7
    finally:
        core.stop()
    # the core's config does not name VSGService: it is still served after a restart
    core = Core(project)
    try:
        items = core.call("GET", "/xosapi/v1/vsg/vsgservices").json()["items"]
        assert [o["vlan"] for o in items] == [7]
    finally:
        core.stop()


def test_a_load_that_would_lose_data_is_refused_and_changes_nothing(core: Core) -> None:
    assert _load(core, VSG_V2, name="vsg2")["status"] == 200
    site = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "keep"}).json()
    core.call("POST", "/xosapi/v1/vsg/vsgservices", json={"name": "v", "site_id": site["id"]})
    before = snapshot(core.project)
    refused = _load(core, VSG.replace("max_length = 20", "max_length = 20").replace(
        "required string name = 1", "required int32 name = 1"
    ), name="vsg2")  # fmt: skip
    assert refused["status"] == 409 and "VSGService.name" in refused["error"], refused
    assert snapshot(core.project) == before
    r = core.call("GET", "/xosapi/v1/vsg/vsgservices")
    assert r.status_code == 200 and r.json()["items"]


def test_bad_xproto_is_400_naming_the_place(core: Core) -> None:
    bad = _load(core, "message Broken (XOSBase) {\n    required string = 1;\n}\n", name="broken")
    assert bad["status"] == 400 and bad["field"] == "xprotos"
    assert bad["error"].startswith("broken/vsg.xproto:2:"), bad
    unknown = _load(core, VSG.replace("Site:", "Nowhere:").replace("->Site", "->Nowhere"))
    assert unknown["status"] == 400 and "Nowhere" in unknown["error"], unknown
    r = core.call("POST", MODELS, user="vsg", json={"name": "x", "xprotos": []})
    assert r.status_code == 400 and r.json()["field"] == "xprotos"


def test_a_model_whose_path_is_taken_is_refused_naming_it(core: Core) -> None:
    """An app_label that is one of the core's own paths (`/xosapi/v1/events/...` is the
    event bus) or a second model on one path would hide one of the two: refused, 400."""
    before = snapshot(core.project)
    own = _load(core, VSG.replace('"vsg"', '"events"'), name="own")
    assert own["status"] == 400 and own["field"] == "xprotos", own
    assert "VSGService" in own["error"] and "app_label 'events'" in own["error"], own
    second = VSG.split(";", 1)[1].replace("VSGService", "VSGSERVICE")
    same = VSG + second.replace("vsg_services", "vsg_services_too")
    clash = _load(core, same, name="clash")
    assert clash["status"] == 400 and "/xosapi/v1/vsg/vsgservices" in clash["error"], clash
    assert "VSGSERVICE" in clash["error"] and "VSGService" in clash["error"], clash
    assert snapshot(core.project) == before
    assert core.call("GET", "/xosapi/v1/events/sites").status_code != 200


def test_a_core_on_models_whose_path_is_taken_does_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(tmp_path / "proj")
    (project.root / "models" / "own.xproto").write_text(VSG.replace('"vsg"', '"leases"'))
    capsys.readouterr()
    code, out = project.cli("core", "serve", "--port", "0")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and out == "", err
    assert err[-1].startswith("xos-runtime: error: model VSGService"), err
    assert "app_label 'leases'" in err[-1], err
