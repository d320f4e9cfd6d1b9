"""The compiled xproto parser, kept on disk between processes.

Every command that reads models (`run`, `check`, `status`, ...) starts a new process, and
building the LALR tables from `xproto.lark` costs about 30 ms of its start-up; loading them
from a file costs about 3. So the first process that builds them saves them (`Lark.save`)
to the user's cache folder (`$XDG_CACHE_HOME/xos-runtime`, by default
`~/.cache/xos-runtime`), and the next ones load them.

The file name is a digest of everything the tables depend on (grammar text, parser options,
lark and Python versions), so a changed grammar or an upgrade never loads stale tables; it
is written to a temporary file and renamed into place, so a process starting beside another
never reads half a file. The cache is an optimisation only: a folder that cannot be
created or written, or a file that cannot be read, means building the tables as before,
silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import lark
from lark import Lark

__all__ = ["CACHE_ENV_VAR", "cache_dir", "load_or_build"]

#: Names the cache folder's parent (XDG Base Directory spec); default `~/.cache`.
CACHE_ENV_VAR = "XDG_CACHE_HOME"


def cache_dir() -> Path | None:
    """The folder of the saved tables, or None when there is no home to put it in."""
    base = os.environ.get(CACHE_ENV_VAR)
    if not base or not os.path.isabs(base):  # the spec says: ignore a relative path
        home = os.path.expanduser("~")
        if home == "~":
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "xos-runtime"


def _digest(grammar: str, options: dict[str, Any]) -> str:
    key = repr((grammar, sorted(options.items()), lark.__version__, sys.version_info[:2]))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def load_or_build(grammar: str, **options: Any) -> Lark:
    """`Lark(grammar, **options)` (LALR), from the cache when it holds these tables."""
    folder = cache_dir()
    path = None if folder is None else folder / f"xproto-{_digest(grammar, options)}.tables"
    if path is not None:
        # absent, unreadable or damaged: build it
        with contextlib.suppress(Exception), path.open("rb") as f:
            loaded: Lark = Lark.load(f)
            return loaded
    parser = Lark(grammar, **options)
    if path is not None:
        _save(parser, path)
    return parser


def _save(parser: Lark, path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        return  # no cache: the next process builds the tables too
    try:
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, path)
    except Exception:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
