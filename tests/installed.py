"""Plugin distributions installed in the test environment that tests must turn off.

The README's quick start installs the demo plugin (`pip install -e . ./plugins/xos-runtime-demo`)
before its test command runs the suite in the same environment: its models and steps would
join every config a test runs as a subprocess. Such configs turn it off through
`plugins.disabled`, naming it only when it is installed (an unmatched name is a warning).
"""

from __future__ import annotations

import importlib.metadata


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


#: Installed distributions whose plugins the tests' configs turn off.
DISABLED_PLUGINS = [d for d in ("xos-runtime-demo",) if _installed(d)]


def plugins_line(*settings: str) -> str:
    """A config's `plugins` section that turns them off, with `settings` (lines such as
    `skip_broken: true`) added; "" when there is nothing to say."""
    lines = [*settings]
    if DISABLED_PLUGINS:
        lines.append(f"disabled: [{', '.join(DISABLED_PLUGINS)}]")
    return "plugins:\n" + "".join(f"  {line}\n" for line in lines) if lines else ""
