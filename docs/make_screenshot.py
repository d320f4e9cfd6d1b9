"""Make `docs/status-page.png`: the status page test, run with a screenshot asked for.

The page is set up, driven and checked by `tests/observe/test_status_page.py` (one place);
this script runs that test with `XOS_RUNTIME_SCREENSHOT` set, which saves the page while it
shows an object in error. Needs what the test needs: Debian's `chromium` and
`chromium-driver`, and `pip install -e '.[test]'`.

    python docs/make_screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/observe/test_status_page.py"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else REPO / "docs" / "status-page.png").resolve()
    env = {**os.environ, "XOS_RUNTIME_SCREENSHOT": str(out), "CI": "1"}  # CI: fail, not skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=REPO, env=env
    )
    if done.returncode != 0 or not out.exists():
        print(f"make_screenshot: the page test failed; no screenshot in {out}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
