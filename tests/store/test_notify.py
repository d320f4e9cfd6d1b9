"""Change notifications wake subscribers in this process and in other processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from demo_models import demo_models

from xos_runtime.store import open_store


def test_in_process_subscriber_sees_model_names(tmp_path) -> None:
    acc = open_store(f"sqlite:///{tmp_path}/n.db", demo_models())
    with acc.subscribe() as sub:
        assert sub.wait(0.01) is None
        acc.VSGService.objects.create(name="v")
        assert sub.wait(5) == {"VSGService", "Service"}
        assert sub.wait(0.01) is None
    acc.close()


def test_in_memory_store_notifies_in_process() -> None:
    acc = open_store("sqlite://", demo_models())
    with acc.subscribe() as sub:
        site = acc.Site.objects.create(name="s")
        assert sub.wait(5) == {"Site"}
        site.delete()
        assert sub.wait(5) == {"Site"}
    acc.close()


def test_write_in_another_process_wakes_subscriber(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/n.db"
    acc = open_store(url, demo_models())
    code = textwrap.dedent(
        f"""
        from xos_runtime.store import open_store
        open_store({url!r}).Site.objects.create(name="remote")
        """
    )
    with acc.subscribe() as sub:
        subprocess.run([sys.executable, "-c", code], check=True)
        deadline = time.monotonic() + 10
        changed = None
        while changed is None and time.monotonic() < deadline:
            changed = sub.wait(0.5)
        assert changed == {"Site"}
    assert acc.Site.objects.get(name="remote")
    acc.close()


def test_postgresql_listen_notify_across_processes(pg_store_url: str) -> None:
    acc = open_store(pg_store_url, demo_models())
    code = textwrap.dedent(
        f"""
        from xos_runtime.store import open_store
        open_store({pg_store_url!r}).Site.objects.create(name="remote")
        """
    )
    with acc.subscribe() as sub:
        acc.Site.objects.create(name="local")
        assert sub.wait(5) == {"Site"}
        assert sub.wait(0.5) is None  # our own NOTIFY is not delivered a second time
        subprocess.run([sys.executable, "-c", code], check=True)
        deadline = time.monotonic() + 10
        changed = None
        while changed is None and time.monotonic() < deadline:
            changed = sub.wait(0.5)
        assert changed == {"Site"}
    acc.close()
