"""The demo's tests run whether or not the demo is installed: when it is not (CI installs
only xos-runtime), its folder goes on `sys.path`, and the tests give the harness its hooks
module and classes rather than naming the installed distribution."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("xos_runtime_demo") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
