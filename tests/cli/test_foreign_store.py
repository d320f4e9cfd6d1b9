"""A SQLite file with tables that are not the runtime's is refused and left untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from .conftest import Project, config_text, run_process


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    # a table named like one of the config's models: it must not be taken for the runtime's
    conn.execute("CREATE TABLE Site (id INTEGER PRIMARY KEY, title TEXT)")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO Site VALUES (1, 'not ours')")
    conn.commit()
    conn.close()
    return path


def _use(project: Project, db: Path) -> None:
    project.write_config(config_text().replace("sqlite:///store.db", f"sqlite:///{db}"))


def test_foreign_file_is_refused_and_untouched(project: Project) -> None:
    db = _foreign_db(project.root / "other-app.db")
    _use(project, db)
    before = _digest(db)
    for command in (["status"], ["objects", "create", "Site", "name=s1"], ["run", "--once"]):
        proc = run_process(*command, "-C", project.config)
        assert proc.returncode == 2, (command, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(lines) == 1, proc.stderr
        assert str(db) in lines[0] and "xos_runtime_meta" in lines[0]
        assert "Site, invoices" in lines[0]
    assert _digest(db) == before
    assert sorted(p.name for p in db.parent.glob("other-app.db*")) == ["other-app.db"]


def test_check_fails_on_a_foreign_file(project: Project) -> None:
    db = _foreign_db(project.root / "other-app.db")
    _use(project, db)
    before = _digest(db)
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 1
    assert "not xos-runtime's" in proc.stderr
    assert _digest(db) == before


def test_a_file_that_is_no_database(project: Project) -> None:
    db = project.root / "notes.db"
    db.write_text("just some notes\n" * 100)
    _use(project, db)
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 2
    assert f"{db} is not a SQLite store" in proc.stderr
    assert db.read_text() == "just some notes\n" * 100


def test_the_runtimes_own_store_still_opens(project: Project) -> None:
    assert run_process("objects", "create", "Site", "name=s1", "-C", project.config).returncode == 0
    conn = sqlite3.connect(project.store)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "xos_runtime_meta" in tables
    proc = run_process("objects", "list", "Site", "-C", project.config)
    assert proc.returncode == 0 and "s1" in proc.stdout
