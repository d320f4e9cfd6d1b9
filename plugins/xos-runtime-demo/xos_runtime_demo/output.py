"""Where the demo's sync steps write, and how they write there.

The "backend" of the demo is a folder of JSON files, `<out>/<Model>/<id>.json`, so that what
the steps do is visible with `ls` and `cat`. The folder is, in order of precedence: the
environment variable `XOS_DEMO_OUTPUT`; `<base_dir>/demo-output`, set by the
`xos_runtime_configure` hook from the config file's folder; `./demo-output` when neither is
set (a step constructed by hand, outside the runtime).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: Environment variable that overrides the output folder.
OUTPUT_ENV = "XOS_DEMO_OUTPUT"

#: Set by `xos_runtime_demo.hooks.xos_runtime_configure`; None until the runtime configures us.
_configured_dir: Path | None = None


def configure(directory: str | os.PathLike[str]) -> None:
    """Remember the output folder derived from the configuration."""
    global _configured_dir
    _configured_dir = Path(directory)


def output_dir() -> Path:
    """The output folder; read on every call so that the environment variable always wins."""
    env = os.environ.get(OUTPUT_ENV)
    if env:
        return Path(env)
    return _configured_dir if _configured_dir is not None else Path("demo-output").absolute()


def record_path(model: str, object_id: int) -> Path:
    """The file that stands for object `object_id` of `model`."""
    return output_dir() / model / f"{object_id}.json"


def write_record(path: Path, record: dict[str, Any]) -> bool:
    """Write `record` as JSON to `path` atomically; return False when it already held it.

    The file is written to a temporary file in the same folder and moved over the old one, so
    a reader never sees half a file and a crash never leaves one. An unchanged file is left
    alone, which keeps a repeated sync (the runtime may hand an object over again) a no-op.
    """
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def remove_record(path: Path) -> bool:
    """Remove the file at `path`; return False when there was none (deletion is idempotent)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
