"""`core_version` (issue 14, item 2): admitted or refused at start-up, one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.conftest import Project, config_text, make_project, run_process

from xos_runtime.config.coreversion import CORE_API_VERSION, admits, check_core_version
from xos_runtime.exceptions import ConfigError


@pytest.mark.parametrize(
    "spec",
    [None, "", ">=4.0.0", ">=4.0,<5", "4.0.0,4.1.0", "4.0.4", ">=2.2.1 ~ <5", "~=4.0", "==4.0.*"],
)
def test_admitted(spec: str | None) -> None:
    assert admits(spec)
    check_core_version(spec)


@pytest.mark.parametrize("spec", [">=5.0", "<4.0.4", "4.0.5,5.0", "3.0.0,4.0.3", ">=2.2.1 ~ <4"])
def test_refused_names_both_versions(spec: str) -> None:
    assert not admits(spec)
    with pytest.raises(ConfigError) as info:
        check_core_version(spec, file="c.yaml")
    text = str(info.value)
    assert text.startswith("c.yaml: core_version: ")
    assert spec in text and CORE_API_VERSION in text and "\n" not in text


@pytest.mark.parametrize("spec", ["garbage", "5,4", ">=", " ~ >=4"])
def test_malformed_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="core_version"):
        check_core_version(spec)


def test_the_version_is_one_constant() -> None:
    assert CORE_API_VERSION == "4.0.4"


@pytest.fixture
def proj(tmp_path: Path) -> Project:
    return make_project(tmp_path)


def test_incompatible_synchronizer_is_refused_at_start_up(proj: Project) -> None:
    proj.write_config(config_text('core_version: ">=5.0.0"\n'))
    for argv in (("run", "--once"), ("objects", "list", "Site"), ("core", "serve")):
        proc = run_process(*argv, "-C", proj.config)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert ">=5.0.0" in lines[0] and "4.0.4" in lines[0]
    assert not proj.store.exists()  # refused before the store was opened


def test_xos_services_spec_passes(proj: Project) -> None:
    proj.write_config(config_text('core_version: ">=4.0.0"\n'))
    proc = run_process("objects", "list", "Site", "-C", proj.config)
    assert proc.returncode == 0, proc.stderr
