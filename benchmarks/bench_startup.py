#!/usr/bin/env python
"""Start-up benchmark: how long the `xos-runtime` command takes before it does any work.

Commands, each run as a fresh process N times (`--runs`, default 5) after one untimed
warm-up run (which fills the OS file cache and, on a first run after an install, the
xproto parser tables in `~/.cache/xos-runtime`), as a user's second command would find them:

- `python -c pass` with the interpreter of the console script: the floor, the reference of
  the ratios;
- `xos-runtime --help`: what every command pays before it starts (target 150 ms);
- `xos-runtime run -C FILE --once` on an empty store (target 400 ms): a config like the
  quick start's `demo.yaml` (the `xos-runtime-demo` plugin's models; the models of this
  checkout's copy of the demo from `models_dir` when that plugin is not installed) whose
  store is a SQLite file deleted before every run, with the demo's seeding turned off
  (`XOS_DEMO_SEED=0`), so that each run creates the schema, finds no pending work and exits.
  Every run is checked: exit 0 and a summary line saying that no call was made.

The commands are those of an installed package, as a user runs them: the console script
next to this interpreter (`bin/xos-runtime` of its environment), else the one on `PATH`, or
`--script PATH`. Install the package non-editable (`pip install .`) to measure what a user
gets. Wall time is measured around each process from the parent; the median and the range
(min-max) are printed with the target and the ratio to `python -c pass`.

Usage:
  /path/to/venv/bin/python benchmarks/bench_startup.py            # 5 runs of each command
  /path/to/venv/bin/python benchmarks/bench_startup.py --runs 20
  python benchmarks/bench_startup.py --script /path/to/venv/bin/xos-runtime
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_XPROTO = HERE.parent / "plugins" / "xos-runtime-demo" / "xos_runtime_demo" / "models"
#: What `run --once` logs when it found nothing to do.
IDLE_SUMMARY = "1 pass(es): 0 call(s); 0 object(s) in error"


def find_script(given: str | None) -> Path:
    """The `xos-runtime` console script: `given`, next to this interpreter, or on PATH."""
    if given:
        return Path(given)
    beside = Path(sys.executable).parent / "xos-runtime"
    if beside.exists():
        return beside
    found = shutil.which("xos-runtime")
    if found is None:
        raise SystemExit(
            "no xos-runtime console script next to this interpreter or on PATH: "
            "pip install . (or pass --script)"
        )
    return Path(found)


def script_python(script: Path) -> str:
    """The interpreter named by the script's `#!` line (the one the command really runs)."""
    with script.open("rb") as f:
        first = f.readline().decode(errors="replace").strip()
    if first.startswith("#!"):
        words = first[2:].split()
        if words and os.access(words[0], os.X_OK):
            return words[0]
    return sys.executable


def demo_installed(python: str) -> bool:
    probe = "import importlib.metadata as m; m.distribution('xos-runtime-demo')"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def write_config(root: Path, with_demo: bool) -> Path:
    """The quick start's config on a store of its own (`store.db`, deleted before each run)."""
    lines = [
        "name: bench-startup",
        'accessor: {endpoint: "sqlite:///store.db"}',
        "sync: {workers: 4}",
        "logging: {level: INFO}",
    ]
    if not with_demo:
        lines.append(f"models_dir: {DEMO_XPROTO}")
    config = root / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def remove_store(root: Path) -> None:
    for name in ("store.db", "store.db-wal", "store.db-shm", "store.db-journal"):
        (root / name).unlink(missing_ok=True)


def timed(argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Wall time of one process (seconds) and its stderr; a failed command stops the run."""
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"{' '.join(argv)} exited {out.returncode}")
    return wall, out.stderr


def measure(
    argv: Sequence[str], env: dict[str, str], cwd: Path, runs: int, before: object = None
) -> list[float]:
    """`runs` timed runs after one warm-up; `before` (a callable) runs before each."""
    times = []
    for i in range(runs + 1):
        if callable(before):
            before()
        wall, err = timed(argv, env, cwd)
        if "--once" in argv and IDLE_SUMMARY not in err:
            sys.stderr.write(err)
            raise SystemExit("run --once did not find an empty store (see its log above)")
        if i:  # the first run is the warm-up
            times.append(wall)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    ap.add_argument("--script", help="the xos-runtime console script to time")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    script = find_script(args.script)
    python = script_python(script)
    with_demo = demo_installed(python)
    root = Path(tempfile.mkdtemp(prefix="xrt-startup-"))
    try:
        config = write_config(root, with_demo)
        env = {k: v for k, v in os.environ.items() if k != "XOS_CONFIG_FILE"}
        env.update(XOS_DEMO_SEED="0", XOS_DEMO_OUTPUT=str(root / "demo-output"))
        cases: list[tuple[str, list[str], float | None, object]] = [
            ("python -c pass", [python, "-c", "pass"], None, None),
            ("xos-runtime --help", [str(script), "--help"], 0.150, None),
            (
                "xos-runtime run --once (empty store)",
                [str(script), "run", "-C", str(config), "--once"],
                0.400,
                lambda: remove_store(root),
            ),
        ]
        print(f"# {script} (python {python}), {args.runs} runs each after one warm-up")
        if not with_demo:
            print(f"# xos-runtime-demo is not installed: models from {DEMO_XPROTO}")
        print(f"{'command':38} {'median':>9} {'range':>17} {'target':>8} {'vs pass':>8}")
        floor = None
        for label, argv, target, before in cases:
            times = measure(argv, env, root, args.runs, before)
            median = statistics.median(times)
            floor = floor or median
            spread = f"{min(times) * 1000:,.0f}-{max(times) * 1000:,.0f} ms"
            goal = ms(target) if target else "-"
            verdict = "" if target is None else ("  ok" if median <= target else "  over")
            print(
                f"{label:38} {ms(median):>9} {spread:>17} {goal:>8} "
                f"{median / floor:>7.1f}x{verdict}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
