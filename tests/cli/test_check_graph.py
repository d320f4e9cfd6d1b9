"""`check` and `graph`, in-process, plus the real command as a process (exit codes, env var)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, XPROTO, Cli, Project, config_text, run_process, store_snapshot

CYCLE_XPROTO = """\
message Alpha (XOSBase) {
    required string name = 1;
    required manytoone beta->Beta:alphas = 2;
}
message Beta (XOSBase) {
    required string name = 1;
    required manytoone alpha->Alpha:betas = 2;
}
"""


# --- check: passing ---------------------------------------------------------------------------


def test_check_passes_and_prints_models_and_sync_order(
    cli: Cli, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative store URL is relative to the config's folder

    result = cli("check", "-C", project.config)

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"config: {project.config} (name 'clitest')"
    assert lines[1] == f"store: sqlite:///{project.store}"
    assert lines[2] == "models: 4 (Site, User, Service, VSG)"
    assert lines[3].startswith("plugins: ")
    assert lines[4] == "sync order: Service -> Site -> User -> VSG"
    assert lines[-1] == "check passed"
    assert result.err == ""
    assert not (elsewhere / "store.db").exists()


def test_check_reads_xos_config_file_when_no_option(
    cli: Cli, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XOS_CONFIG_FILE", str(project.config))
    result = cli("check")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "check passed"


def test_option_wins_over_xos_config_file(
    cli: Cli, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XOS_CONFIG_FILE", str(project.root / "missing.yaml"))
    result = cli("check", "-C", project.config)
    assert result.code == 0, result.err


def test_check_without_config_is_a_usage_error(cli: Cli) -> None:
    result = cli("check")
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("usage: xos-runtime")
    assert result.err.splitlines()[-1] == (
        "xos-runtime: error: no configuration file: pass -C FILE or set XOS_CONFIG_FILE"
    )


# --- check: failing (exit 1, one message naming what is wrong) ---------------------------------


def _failure(result_err: str) -> str:
    lines = result_err.splitlines()
    assert len(lines) == 1, result_err
    assert lines[0].startswith("check failed: "), result_err
    return lines[0].removeprefix("check failed: ")


def test_check_fails_on_bad_yaml(cli: Cli, project: Project) -> None:
    project.write_config("name: clitest\nmodels_dir: [models\n")
    result = cli("check", "-C", project.config)
    assert result.code == 1
    assert result.out == ""
    message = _failure(result.err)
    assert re.match(rf"{re.escape(str(project.config))}:\d+:\d+: invalid YAML: ", message), message
    assert not project.store.exists()


@pytest.mark.parametrize(
    ("extra", "key_path", "hint"),
    [
        ("bogus_key: 1\n", "bogus_key", "(expected one of: name, accessor, "),
        ("sync: {backof: {initial: 1}}\n", "sync.backof", "did you mean 'backoff'?"),
    ],
)
def test_check_fails_on_unknown_key_naming_the_key_path(
    cli: Cli, project: Project, extra: str, key_path: str, hint: str
) -> None:
    project.write_config(config_text(extra))
    result = cli("check", "-C", project.config)
    assert result.code == 1
    message = _failure(result.err)
    assert message.startswith(f"{project.config}: {key_path}: unknown key"), message
    assert hint in message
    assert not project.store.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models_dir: models\n", "name: required key is missing"),
        (
            "name: c\nmodels_dir: nomodels\n",
            "models_dir[0]: directory does not exist: '{root}/nomodels'",
        ),
        (
            "name: c\nmodels_dir: models\n"
            "accessor: {endpoint: 'sqlite:///s.db', password: '@pw'}\n",
            "accessor.password: cannot read password file '{root}/pw': No such file or directory",
        ),
        (
            "name: c\nmodels_dir: models\nplugins: {skip_broken: maybe}\n",
            "plugins.skip_broken: expected a boolean (true/false), got 'maybe' (string)",
        ),
    ],
    ids=["missing name", "missing models_dir", "missing password file", "bad boolean"],
)
def test_check_fails_on_bad_values_naming_file_and_key(
    cli: Cli, project: Project, text: str, expected: str
) -> None:
    project.write_config(text)
    result = cli("check", "-C", project.config)
    assert result.code == 1
    assert _failure(result.err) == f"{project.config}: " + expected.format(root=project.root)


def test_check_fails_on_nested_unknown_key(cli: Cli, project: Project) -> None:
    project.write_config(
        "name: clitest\nmodels_dir: models\naccessor: {endpiont: sqlite:///x.db}\n"
    )
    message = _failure(cli("check", "-C", project.config).err)
    assert message == (
        f"{project.config}: accessor.endpiont: unknown key; did you mean 'endpoint'?"
    ), message


def test_check_fails_on_missing_config_file(cli: Cli, project: Project) -> None:
    missing = project.root / "nope.yaml"
    result = cli("check", "-C", missing)
    assert result.code == 1
    assert _failure(result.err) == (
        f"{missing}: cannot read configuration file: No such file or directory"
    )


def test_check_fails_on_xproto_syntax_error_with_file_line_column(
    cli: Cli, project: Project
) -> None:
    project.write_xproto(
        "message Site (XOSBase) {\n"
        "    required string name = 1 [max_length = 64];\n"
        "    optional int32 quota = 2\n"  # the `;` is missing: the `}` below is unexpected
        "}\n"
    )
    result = cli("check", "-C", project.config)
    assert result.code == 1
    message = _failure(result.err)
    assert message.startswith(f"{project.xproto}:4:1: "), message
    assert "'}'" in message


def test_check_fails_on_link_to_undefined_model(cli: Cli, project: Project) -> None:
    project.write_xproto(
        "message User (XOSBase) {\n"
        "    required string email = 1;\n"
        "    required manytoone site->Site:users = 2;\n"
        "}\n"
    )
    result = cli("check", "-C", project.config)
    assert result.code == 1
    message = _failure(result.err)
    assert message.startswith(str(project.xproto)), message
    assert "model 'User'" in message
    assert "link 'site' points at undefined model 'Site'" in message


def test_check_fails_on_cycle_of_required_links(cli: Cli, project: Project) -> None:
    project.write_xproto(CYCLE_XPROTO)
    result = cli("check", "-C", project.config)
    assert result.code == 1
    assert _failure(result.err) == "dependency cycle: Alpha -> Beta -> Alpha (from xproto links)"


def test_check_fails_on_cycle_through_dependency_graph_file(cli: Cli, project: Project) -> None:
    deps = project.root / "deps.json"
    deps.write_text(json.dumps({"Site": [["User", "owner", "owned_sites"]]}))
    project.write_config(config_text("dependency_graph: deps.json\n"))
    result = cli("check", "-C", project.config)
    assert result.code == 1
    assert _failure(result.err) == (
        f"dependency cycle: Site -> User -> Site (from {deps} and xproto links)"
    )


def test_check_fails_on_unreadable_dependency_graph_json(cli: Cli, project: Project) -> None:
    deps = project.root / "deps.json"
    deps.write_text('{"User": [["Site", "site", "users"]')
    project.write_config(config_text("dependency_graph: deps.json\n"))
    message = _failure(cli("check", "-C", project.config).err)
    assert re.match(rf"{re.escape(str(deps))}:1:\d+: invalid JSON", message), message


# --- graph ------------------------------------------------------------------------------------


def test_graph_text(cli: Cli, project: Project) -> None:
    result = cli("graph", "-C", project.config)
    assert result.code == 0, result.err
    assert result.out == (
        "Service\nSite\nUser -> Site (site/users)\nVSG\n\n"
        "sync order (deletion runs it backwards): Service -> Site -> User -> VSG\n"
    )


def test_graph_text_is_the_default_format(cli: Cli, project: Project) -> None:
    assert (
        cli("graph", "-C", project.config).out
        == cli("graph", "-C", project.config, "--format", "text").out
    )


def test_graph_dot(cli: Cli, project: Project) -> None:
    result = cli("graph", "-C", project.config, "--format", "dot")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "digraph models {"
    assert lines[-1] == "}"
    assert '  "User" -> "Site" [label="site/users"];' in lines
    assert sum("->" in line for line in lines) == 1
    for model in ("Site", "User", "Service", "VSG"):
        assert f'  "{model}";' in lines


def test_graph_json(cli: Cli, project: Project) -> None:
    result = cli("graph", "-C", project.config, "--format", "json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert sorted(doc["models"]) == ["Service", "Site", "User", "VSG"]
    assert doc["edges"] == [{"from": "User", "to": "Site", "links": [["site", "users"]]}]
    assert doc["order"] == ["Service", "Site", "User", "VSG"]
    assert doc["self_links"] == {}


def test_graph_combines_dependency_file_and_links(cli: Cli, project: Project) -> None:
    (project.root / "deps.json").write_text(json.dumps({"VSG": [["Site", "site", "vsgs"]]}))
    project.write_config(config_text("dependency_graph: deps.json\n"))
    doc = json.loads(cli("graph", "-C", project.config, "--format", "json").out)
    assert doc["edges"] == [
        {"from": "User", "to": "Site", "links": [["site", "users"]]},
        {"from": "VSG", "to": "Site", "links": [["site", "vsgs"]]},
    ]
    assert doc["order"].index("Site") < doc["order"].index("VSG")


def test_graph_bad_format_is_a_usage_error(cli: Cli, project: Project) -> None:
    result = cli("graph", "-C", project.config, "--format", "svg")
    assert result.code == 2
    assert result.out == ""
    assert "invalid choice: 'svg'" in result.err


def test_graph_on_cycle_is_a_configuration_error(cli: Cli, project: Project) -> None:
    project.write_xproto(CYCLE_XPROTO)
    result = cli("graph", "-C", project.config)
    assert result.code == 2
    assert result.err == (
        "xos-runtime: error: dependency cycle: Alpha -> Beta -> Alpha (from xproto links)\n"
    )


# --- the real command, as a process -----------------------------------------------------------


def test_process_uses_xos_config_file(project: Project, tmp_path: Path) -> None:
    env = {"XOS_CONFIG_FILE": str(project.config)}
    proc = run_process("objects", "create", "--json", "Site", "name=env", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "env"
    assert not (tmp_path / "store.db").exists()
    assert [r["name"] for r in store_snapshot(project.url)["Site"]["live"]] == ["env"]


def test_process_failed_check_exits_1(project: Project) -> None:
    project.write_config(config_text("bogus_key: true\n"))
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"check failed: {project.config}: bogus_key: unknown key (")


def test_process_usage_errors_exit_2(project: Project) -> None:
    proc = run_process("check")  # neither -C nor XOS_CONFIG_FILE
    assert proc.returncode == 2
    assert "no configuration file" in proc.stderr

    proc = run_process("objects", "create", "Site", "quota=abc", "name=x", "-C", project.config)
    assert proc.returncode == 2
    assert proc.stderr == (
        "xos-runtime: error: Site.quota: expected an integer (int32), got 'abc'\n"
    )


def test_console_script_entry_point_check_passes(project: Project) -> None:
    """The `xos-runtime` console script (from the package metadata), run on this checkout."""
    script = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(ep,) = entry_points(group='console_scripts', name='xos-runtime')\n"
        "assert ep.value == 'xos_runtime.cli.main:main', ep.value\n"
        "sys.argv[0] = 'xos-runtime'\n"
        "sys.exit(ep.load()())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "check", "-C", str(project.config)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "check passed"
    assert "sync order: Service -> Site -> User -> VSG" in proc.stdout.splitlines()


# --- check changes nothing in the store ---------------------------------------------------------


def test_check_does_not_create_the_store(cli: Cli, project: Project) -> None:
    assert cli("check", "-C", project.config).code == 0
    assert not project.store.exists()


def test_check_does_not_evolve_the_store_but_refuses_what_run_would(
    cli: Cli, project: Project
) -> None:
    import sqlite3

    assert cli("objects", "create", "-C", project.config, "Site", "name=s1").code == 0
    grown = XPROTO.replace(
        "optional int32 quota = 3;", "optional int32 quota = 3;\n    optional string region = 4;"
    )
    project.write_xproto(grown)
    result = cli("check", "-C", project.config)
    assert result.code == 0, result.err
    with sqlite3.connect(project.store) as db:
        columns = {row[1] for row in db.execute('PRAGMA table_info("Site")')}
    assert "quota" in columns and "region" not in columns  # checked, not applied
    project.write_xproto(XPROTO.replace("    optional int32 quota = 3;\n", ""))
    result = cli("check", "-C", project.config)
    assert result.code == 1
    assert "field Site.quota was removed while the store holds 1 Site objects" in result.err
