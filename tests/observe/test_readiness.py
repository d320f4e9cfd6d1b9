"""`/healthz` (liveness) and `/readyz` (readiness) apart: what makes a runtime not ready."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import yaml
from observed_run import wait_for

from xos_runtime.host import Runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Any]:
    """`runtime(event_bus=...)`: a runtime with metrics on a free port (not serving)."""
    made: list[Runtime] = []

    def make(**sections: Any) -> Runtime:
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / "m.xproto").write_text("message Site (XOSBase) {\n}\n")
        config = {
            "name": "ready",
            "models_dir": "models",
            "accessor": {"endpoint": f"sqlite:///{tmp_path}/store.db"},
            "metrics": {"enabled": True, "port": 0},
            **sections,
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        made.append(Runtime.load(str(path)))
        return made[-1]

    yield make
    for rt in made:
        rt.close()


def test_a_dead_engine_makes_it_unready_but_still_alive(runtime: Any) -> None:
    rt = runtime()
    dead: list[str] = []
    server = rt.observer().serve(lambda: list(dead))
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(f"{base}/readyz", timeout=5).text == "ready\n"
        dead.append("sync")
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert (ready.status_code, ready.text) == (503, "engine sync: not running\n")
        health = requests.get(f"{base}/healthz", timeout=5)
        assert (health.status_code, health.text) == (200, "ok\n")
    finally:
        server.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu); its bootstrap server."""
    from tansu import Broker, BrokerError, tansu_binary

    try:
        running = Broker(tansu_binary(tmp_path), tmp_path / "tansu.log")
        running.start()
    except BrokerError as exc:
        pytest.fail(str(exc))
    yield running.servers
    running.stop()


def test_with_kafka_a_broker_must_answer(runtime: Any, broker: str) -> None:
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers: not a broker
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        mute = f"127.0.0.1:{silent.getsockname()[1]}"
        down = f"127.0.0.1:{closed.getsockname()[1]}"
        for servers in (down, mute, f"{down},{mute}"):
            rt = runtime(event_bus={"kind": "kafka", "endpoint": servers})
            assert rt.observer().not_ready(list) == [
                f"event bus: no Kafka broker answers at {servers}"
            ]
        rt = runtime(event_bus={"kind": "kafka", "endpoint": f"{down},{broker}"})
        assert rt.observer().not_ready(list) == []


def test_a_store_that_stops_answering_makes_it_unready(start_run: Any, pg_database: str) -> None:
    """A real `run` on PostgreSQL: the database refuses connections, `/readyz` says so
    while `/healthz` stays 200; connections allowed again, it is ready again."""
    admin_url = pg_database.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    admin = sa.create_engine(f"{admin_url}/postgres", isolation_level="AUTOCOMMIT")
    name = f"xrt_ready_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    run = None
    try:
        run = start_run(endpoint=f"postgresql://postgres@127.0.0.1:5432/{name}")

        def readyz() -> requests.Response:
            return requests.get(f"{run.base}/readyz", timeout=10)

        wait_for(lambda: readyz().status_code == 200, "ready")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        seen: list[requests.Response] = []
        wait_for(lambda: seen.append(readyz()) or seen[-1].status_code == 503, "not ready")
        down = seen[-1]
        assert down.text.startswith("store: not answering: "), down.text
        assert requests.get(f"{run.base}/healthz", timeout=5).status_code == 200
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for(lambda: readyz().status_code == 200, "ready again")
        assert run.stop() == 0
    finally:
        if run is not None:
            run.stop()  # before its database goes
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
