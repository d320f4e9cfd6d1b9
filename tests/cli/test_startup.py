"""What the command line imports before it does any work (no timing: module sets only).

`xos-runtime --help`, a usage error, and the parsing of every command import argparse and
little else; the module of the command that runs, and the heavy libraries, are imported on
dispatch (`xos_runtime.cli.commands`). Each check runs in a fresh interpreter, because this
one has long imported everything. `benchmarks/bench_startup.py` prints what it is worth.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from installed import plugins_line

from xos_runtime.cli.commands import Handler
from xos_runtime.cli.main import build_parser

from .conftest import REPO_ROOT, Project

#: Libraries and runtime layers that no command needs in order to parse its arguments.
HEAVY = [
    "argon2",
    "attrs",
    "kafka",
    "lark",
    "loguru",
    "networkx",
    "pluggy",
    "prometheus_client",
    "sqlalchemy",
    "starlette",
    "stevedore",
    "uvicorn",
    "yaml",
    "xos_runtime.cli.common",
    "xos_runtime.cli.core",
    "xos_runtime.cli.inspect",
    "xos_runtime.cli.objects",
    "xos_runtime.cli.run",
    "xos_runtime.core",
    "xos_runtime.engines",
    "xos_runtime.hookspecs",
    "xos_runtime.host",
    "xos_runtime.models",
    "xos_runtime.observe",
    "xos_runtime.plugins",
    "xos_runtime.steps",
    "xos_runtime.store",
]


def imported_after(code: str, *argv: str) -> list[str]:
    """The modules loaded by a fresh interpreter that runs `code` (`sys.modules` at exit)."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import json, sys
        sys.__stdout__.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
        """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("XOS_CONFIG_FILE", None)
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.rpartition("\nMODULES ")[2]
    modules: list[str] = json.loads(line)
    return modules


def loaded(modules: list[str], names: list[str]) -> list[str]:
    """Which of `names` (packages count with their submodules) are among `modules`."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["objects", "list", "--help"],
        ["core", "serve", "--help"],
        ["--version"],
        ["check"],
    ],
    ids=["help", "run-help", "objects-help", "core-help", "version", "usage-error"],
)
def test_parsing_a_command_line_imports_nothing_heavy(argv: list[str]) -> None:
    code = """
        import contextlib, io, sys
        from xos_runtime.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                main(sys.argv[1:])
            except SystemExit:
                pass
        """
    modules = imported_after(code, *argv)
    assert "xos_runtime.cli.main" in modules
    assert loaded(modules, HEAVY) == []


def test_the_public_face_is_light_and_complete() -> None:
    light = imported_after("import xos_runtime, xos_runtime.config, xos_runtime.exceptions")
    assert loaded(light, HEAVY) == []

    used = imported_after("""
        import xos_runtime
        from xos_runtime import *  # every name of __all__ resolves
        from xos_runtime import DeferredException, SyncStep, connect, hookimpl
        from xos_runtime.steps import SyncStep as Defined
        from xos_runtime.hookspecs import hookimpl as marker
        assert SyncStep is Defined and hookimpl is marker
        assert set(xos_runtime.__all__) <= set(dir(xos_runtime))
        assert sorted(xos_runtime.__all__) == sorted(set(xos_runtime.__all__))
        for name in xos_runtime.__all__:
            assert getattr(xos_runtime, name) is not None, name
        try:
            xos_runtime.NoSuchName
        except AttributeError as exc:
            assert "NoSuchName" in str(exc)
        else:
            raise AssertionError("NoSuchName resolved")
        """)
    assert "xos_runtime.steps" in used


def test_every_command_names_a_handler_that_exists() -> None:
    """The handlers are named by strings: a typo would only show when that command runs."""
    handlers: dict[str, Handler] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            handler = parser.get_default("handler")
            assert isinstance(handler, Handler), path
            handlers[path] = handler
        for action in subparsers:
            for name, child in action.choices.items():
                walk(child, f"{path} {name}".strip())

    walk(build_parser(), "")
    assert set(handlers) == {
        "run",
        "check",
        "plugins",
        "graph",
        "status",
        "plan",
        *(f"objects {a}" for a in ("list", "show", "create", "update", "delete")),
        "events publish",
        "core serve",
        "core user add",
        "core token create",
    }
    for path, handler in handlers.items():
        module = importlib.import_module(handler.module)
        assert callable(getattr(module, handler.function, None)), f"{path}: {handler}"


def test_run_once_imports_what_it_uses_only(project: Project, tmp_path: Path) -> None:
    """`run` imports neither the other commands nor Kafka (memory bus) nor the HTTP server,
    the observer and prometheus_client (metrics off)."""
    code = """
        import sys
        from xos_runtime.cli.main import main
        assert main(sys.argv[1:]) == 0
        """
    modules = imported_after(code, "run", "-C", str(project.config), "--once")
    assert "xos_runtime.host" in modules  # it did run
    assert (
        loaded(
            modules,
            [
                "kafka",
                "http.server",
                "prometheus_client",
                "xos_runtime.observe",
                "xos_runtime.cli.inspect",
                "xos_runtime.cli.objects",
                "xos_runtime.core",
                "starlette",
                "uvicorn",
                "argon2",
            ],
        )
        == []
    )


def test_metrics_are_loaded_only_where_they_are_served(project: Project) -> None:
    """With `metrics.enabled`, `status` and `run --once` (which serve nothing) still import
    neither prometheus_client nor the observer."""
    from .conftest import config_text

    project.write_config(config_text("metrics: {enabled: true, port: 0}\n"))
    code = """
        import sys
        from xos_runtime.cli.main import main
        assert main(sys.argv[1:]) in (0, 1)
        """
    for argv in (["run", "--once"], ["status"]):
        modules = imported_after(code, *argv, "-C", str(project.config))
        assert "xos_runtime.host" in modules, argv
        assert loaded(modules, ["prometheus_client", "xos_runtime.observe"]) == [], argv


def test_only_a_command_of_its_own_process_freezes_what_it_loaded() -> None:
    """`main()` of the console script pauses the GC while the command's module loads and
    freezes it (`Handler.load(own_process=True)`); `main(argv)` in another program's process
    (these tests, say) leaves that program's GC alone."""
    modules = imported_after("""
        import gc
        from xos_runtime.cli.commands import Handler

        assert gc.isenabled() and gc.get_freeze_count() == 0
        Handler("xos_runtime.cli.inspect", "status").load()
        assert gc.isenabled() and gc.get_freeze_count() == 0

        handle = Handler("xos_runtime.cli.run", "handle").load(own_process=True)
        assert callable(handle)
        assert gc.isenabled()
        assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
        """)
    assert "xos_runtime.cli.run" in modules


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_what_reading_the_config_logs_follows_the_configs_level(tmp_path: Path, level: str) -> None:
    """A legacy XOS key is ignored with a DEBUG line: shown at `logging.level: DEBUG`, not at
    the default INFO (it used to reach stderr before the config's logging was set up)."""
    from .conftest import run_process

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.xproto").write_text("message Thing (XOSBase) {\n}\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"name: legacy\nmodels_dir: models\nrequired_models: [Thing]\n"
        f"logging: {{level: {level}}}\n{plugins_line()}"
    )
    done = run_process("run", "--once", "-C", config)
    assert done.returncode == 0, done.stderr
    line = "required_models: legacy XOS key, ignored"
    assert (line in done.stderr) == (level == "DEBUG"), done.stderr
