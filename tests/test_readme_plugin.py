"""The README's plugin example, run as written: its code blocks make a plugin distribution,
which is pip-installed, tested with `xos_runtime.testing`, and run from a shell (`events
publish`, `plan`, `run --until-idle`, `status`).

A block belongs to the example when its first line names a file (`# file: PATH`, or
`// file: PATH` in xproto); the shell script's `pip install` line installs into a folder of
the test instead of the environment the suite runs in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from installed import plugins_line

import xos_runtime

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Writing a plugin"
BLOCK = re.compile(r"^```[a-z]*\n(?P<body>.*?)^```$", re.S | re.M)
FILE = re.compile(r"^(?:#|//) file: (?P<path>\S+)\n")


def readme_files() -> dict[str, str]:
    """The example's files, by path, from the README's plugin section."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    files = {}
    for block in BLOCK.finditer(text[start:end]):
        named = FILE.match(block["body"])
        if named:
            files[named["path"]] = block["body"]
    return files


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The example written out, its plugin installed into `site/`; (folder, environment)."""
    root = tmp_path_factory.mktemp("readme-plugin")
    files = readme_files()
    assert {"my-sites/pyproject.toml", "config.yaml", "try.sh"} <= set(files)
    for path, body in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(body)
    # the suite's environment may hold the demo plugin (the README's quick start): off
    (root / "config.yaml").write_text(files["config.yaml"] + plugins_line())
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            "--target",
            str(site),
            str(root / "my-sites"),
        ],
        check=True,
        cwd=root,
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    env.pop("XOS_CONFIG_FILE", None)
    return root, env


def test_the_example_s_tests_pass(example: tuple[Path, dict[str, str]]) -> None:
    root, env = example
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(root / "my-sites" / "tests"),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_the_example_runs_from_a_shell(example: tuple[Path, dict[str, str]]) -> None:
    root, env = example
    script = (root / "try.sh").read_text().splitlines()
    codes = {}
    for line in script:
        command = line.split("#", 1)[0].strip()
        if not command or command.startswith("pip install"):
            continue  # installed into the test's folder instead
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        codes[command.split()[1]] = (proc.returncode, proc.stdout, proc.stderr)
    assert codes["objects"][0] == 0, codes["objects"]
    code, out, err = codes["plan"]
    assert code == 0, err
    assert re.search(r"sync +Site 1\b", out), out
    assert re.search(r"SitePolicy: create Site 1\b", out), out
    assert codes["events"][0] == 0, codes["events"]
    code, out, err = codes["run"]
    assert code == 1, err  # bad-site is left in error, as the README says
    assert codes["status"][0] in (0, 1), codes["status"]
    accessor = xos_runtime.connect(root / "config.yaml")
    try:
        sites = {s.name: s for s in accessor.get_model_class("Site").objects.all()}
    finally:
        accessor.close()
    assert set(sites) == {"bad-site", "east"}
    east, bad = sites["east"], sites["bad-site"]
    assert (east.login_base, east.backend_code, east.temperature) == ("east", 1, None)
    assert (bad.login_base, bad.backend_code, bad.temperature) == ("bad-site", 2, 21)
