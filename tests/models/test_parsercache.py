"""The compiled xproto parser kept between processes: loaded when it fits, rebuilt otherwise,
never in the way."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from lark import Lark, UnexpectedInput

from xos_runtime.models import parsercache
from xos_runtime.models.parsercache import cache_dir, load_or_build

GRAMMAR = resources.files("xos_runtime.models").joinpath("xproto.lark").read_text("utf-8")
OPTIONS = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True}
TEXT = "message Site (XOSBase) {\n    required string name = 1 [max_length = 64];\n}\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of this test's own (`$XDG_CACHE_HOME/xos-runtime`)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "xos-runtime"


def saved(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_the_first_process_saves_the_tables_and_the_next_one_loads_them(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = load_or_build(GRAMMAR, **OPTIONS)
    (file,) = saved(cache)
    assert oct(cache.stat().st_mode & 0o777) == "0o700"

    def no_build(*args: object, **kwargs: object) -> Lark:
        raise AssertionError("built although the cache holds the tables")

    monkeypatch.setattr(parsercache, "Lark", type("NoBuild", (Lark,), {"__init__": no_build}))
    loaded = load_or_build(GRAMMAR, **OPTIONS)

    assert loaded.parse(TEXT) == built.parse(TEXT)
    tree = loaded.parse(TEXT)
    assert (tree.meta.line, tree.meta.end_line) == (1, 3)  # propagate_positions kept
    with pytest.raises(UnexpectedInput):
        loaded.parse("message {")
    assert saved(cache) == [file]


def test_another_grammar_or_options_use_another_file(cache: Path) -> None:
    load_or_build(GRAMMAR, **OPTIONS)
    load_or_build(GRAMMAR + "\n// changed\n", **OPTIONS)
    load_or_build(GRAMMAR, **{**OPTIONS, "propagate_positions": False})
    assert len(saved(cache)) == 3


def test_a_damaged_file_is_rebuilt_and_replaced(cache: Path) -> None:
    load_or_build(GRAMMAR, **OPTIONS)
    (file,) = saved(cache)
    file.write_bytes(b"not a pickle")

    parser = load_or_build(GRAMMAR, **OPTIONS)

    assert parser.parse(TEXT)
    assert file.read_bytes() != b"not a pickle"
    assert load_or_build(GRAMMAR, **OPTIONS).parse(TEXT) == parser.parse(TEXT)


def test_a_cache_folder_that_cannot_be_made_only_costs_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert load_or_build(GRAMMAR, **OPTIONS).parse(TEXT)


def test_where_the_cache_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "xos-runtime"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "xos-runtime"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "xos-runtime"
