#!/usr/bin/env python
"""Seeding benchmark: objects/s of `Model.objects.bulk_create` next to one `create` each.

A script that fills a store through the script API (contract section 4) either creates one
object at a time (`Site.objects.create(...)`: one transaction and one change notification
per object) or hands a list to `Site.objects.bulk_create([...])` (one of each for the
list). Both run on a new SQLite store of one model, through `xos_runtime.connect`, and are
checked: every object stored once, with its id. The one-at-a-time run is timed over fewer
objects (`--single-n`): it is the slow reference.

Usage:
  python benchmarks/bench_seed.py                 # bulk N=100,000, one at a time N=2,000
  python benchmarks/bench_seed.py --n 20000 --single-n 1000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

MODEL = (
    "message SeedSite (XOSBase) {\n    required string name = 1;\n    optional int32 size = 2;\n}\n"
)


def store(root: Path, name: str) -> object:
    from xos_runtime import connect

    folder = root / name
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "seed.xproto").write_text(MODEL)
    config = folder / "config.yaml"
    config.write_text(
        f'name: {name}\naccessor: {{endpoint: "sqlite:///{folder}/store.db"}}\n'
        "models_dir: models\nlogging: {level: WARNING}\n"
    )
    return connect(config)


def one_at_a_time(root: Path, n: int) -> float:
    acc = store(root, f"single-{n}-{time.monotonic_ns()}")
    try:
        cls = acc.get_model_class("SeedSite")  # type: ignore[attr-defined]
        t = time.perf_counter()
        for i in range(n):
            cls.objects.create(name=f"s{i}", size=i)
        seconds = time.perf_counter() - t
        assert cls.objects.count() == n
        return n / seconds
    finally:
        acc.close()  # type: ignore[attr-defined]


def bulk(root: Path, n: int) -> float:
    acc = store(root, f"bulk-{n}-{time.monotonic_ns()}")
    try:
        cls = acc.get_model_class("SeedSite")  # type: ignore[attr-defined]
        rows = [{"name": f"s{i}", "size": i} for i in range(n)]
        t = time.perf_counter()
        made = cls.objects.bulk_create(rows)
        seconds = time.perf_counter() - t
        assert len({o.id for o in made}) == n and cls.objects.count() == n
        return n / seconds
    finally:
        acc.close()  # type: ignore[attr-defined]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="objects per bulk_create run")
    ap.add_argument("--single-n", type=int, default=2_000, help="objects per one-at-a-time run")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xrt-seed-") as tmp:
        root = Path(tmp)
        singles = [one_at_a_time(root, args.single_n) for _ in range(args.runs)]
        bulks = [bulk(root, args.n) for _ in range(args.runs)]
    ratio = statistics.median(bulks) / statistics.median(singles)
    print(f"# median of {args.runs} runs (min-max), SQLite, objects/s")
    print(f"{'case':<46} {'objects/s':>26}")
    print(f"{'create() one at a time, N=' + format(args.single_n, ','):<46} {spread(singles):>26}")
    print(f"{'bulk_create([...]), N=' + format(args.n, ','):<46} {spread(bulks):>26}")
    print(f"ratio bulk / one at a time: {ratio:,.1f}x")


if __name__ == "__main__":
    main()
