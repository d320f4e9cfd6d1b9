"""The ORM semantics XOS plugins rely on (reference sections 2.4 and 2.6), in process, on the
sample service's models over a real SQLite store, with the compat distribution installed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xos_runtime.host import Runtime

pytestmark = pytest.mark.usefixtures("compat")


#: Models of our own that use the core models the opencord services link to: a model derived
#: directly from XOSBase (olt's OLTDevice is one), a link to `User` (rcord's RCORDSubscriber
#: has one), a `ComputeServiceInstance` sub-model.
EXTRA_MODELS = """
option app_label = "gadget";

message GadgetDevice (XOSBase) {
    required string name = 1 [max_length = 64];
    optional manytoone creator->User:created_gadgets = 2;
}

message GadgetPort (GadgetDevice) {
    required int32 port_no = 1;
}

message GadgetInstance (ComputeServiceInstance) {
    optional string flavor_hint = 1 [max_length = 32];
}
"""


@pytest.fixture
def runtime(service: Path) -> Iterator[Runtime]:
    (service / "models" / "gadget.xproto").write_text(EXTRA_MODELS)
    rt = Runtime.load(service / "config.yaml")
    rt.startup()  # the compat plugin binds the runtime here
    yield rt
    rt.shutdown()
    rt.close()


@pytest.fixture
def a(runtime: Runtime) -> Any:
    return runtime.accessor


@pytest.fixture
def svc(a: Any) -> Any:
    return a.WidgetService.objects.create(name="widgets", backend_url="http://127.0.0.1:1")


def test_get_raises_index_error_on_a_miss_and_first_gives_none(a: Any, svc: Any) -> None:
    with pytest.raises(IndexError):
        a.WidgetServiceInstance.objects.get(color="nowhere")
    with pytest.raises(IndexError):
        a.WidgetServiceInstance.objects.filter(color="nowhere")[0]
    assert a.WidgetServiceInstance.objects.first() is None
    assert a.WidgetServiceInstance.objects.filter(color="nowhere").first() is None
    assert svc.service_instances.first() is None


def test_model_classes_named_at_import_time_act_once_bound(a: Any, svc: Any) -> None:
    import xossynchronizer.modelaccessor as ma

    # the service's policy module imported these before the store was open
    policy_module = next(
        m for n, m in sys.modules.items() if n.endswith(".model_policy_widgetserviceinstance")
    )
    early = policy_module.WidgetAccount
    assert early.model_name == "WidgetAccount"
    obj = early(owner=svc, account_name="acct-x")  # Model(**kw) then save()
    assert obj.is_new
    obj.save()
    assert not obj.is_new
    assert isinstance(obj, early)
    assert ma.WidgetAccount is a.WidgetAccount
    assert ma.model_accessor.WidgetAccount.objects.get(id=obj.id).account_name == "acct-x"
    assert ma.model_accessor.get_model_class("Service") is a.Service


def test_save_changed_fields_writes_only_the_diff(a: Any, svc: Any) -> None:
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red", size=1)
    before = a.WidgetServiceInstance.objects.get(id=si.id).updated

    si.save_changed_fields()  # nothing changed: no write at all
    assert a.WidgetServiceInstance.objects.get(id=si.id).updated == before

    other = a.WidgetServiceInstance.objects.get(id=si.id)
    other.size = 7
    other.save()
    si.oper_status = "up"
    si.save_changed_fields(always_update_timestamp=True)

    fresh = a.WidgetServiceInstance.objects.get(id=si.id)
    assert (fresh.oper_status, fresh.size) == ("up", 7)  # the concurrent edit survives
    assert fresh.updated > before


def test_tologdict_leaf_model_class_names(a: Any, svc: Any) -> None:
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    assert si.tologdict() == {"model_name": "WidgetServiceInstance", "pk": si.id}

    base = a.ServiceInstance.objects.get(id=si.id)
    assert type(base).__name__ == "ServiceInstance"
    assert base.leaf_model_name == "WidgetServiceInstance"
    assert base.class_names == "WidgetServiceInstance,ServiceInstance,XOSBase"
    assert "WidgetServiceInstance" in base.class_names
    leaf = base.leaf_model
    assert type(leaf).__name__ == "WidgetServiceInstance" and leaf.color == "red"
    assert leaf.leaf_model is leaf
    service_base = a.Service.objects.get(id=svc.id)
    assert service_base.class_names == "WidgetService,Service,XOSBase"


def test_link_ids_are_readable_writable_and_filterable(a: Any, svc: Any) -> None:
    other = a.WidgetService.objects.create(name="other")
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    assert si.owner_id == svc.id

    assert [x.id for x in a.ServiceInstance.objects.filter(owner_id=svc.id)] == [si.id]
    si.owner_id = other.id
    si.save()
    again = a.WidgetServiceInstance.objects.get(id=si.id)
    assert again.owner.id == other.id
    assert type(again.owner).__name__ == "Service"  # a base-typed link gives the base object
    assert a.Service.objects.get(id=again.owner_id).leaf_model.name == "other"


def test_filter_values_are_coerced_to_the_field_type(a: Any, svc: Any) -> None:
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red", size=3)
    assert [x.id for x in a.WidgetServiceInstance.objects.filter(size="3")] == [si.id]
    assert [x.id for x in a.ServiceInstance.objects.filter(owner_id=str(svc.id))] == [si.id]


def test_unknown_attributes_raise_attribute_error(a: Any, svc: Any) -> None:
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    assert hasattr(si, "oper_status")  # a real field, unset
    assert si.oper_status is None
    assert not hasattr(si, "no_such_field")
    with pytest.raises(AttributeError):
        _ = si.no_such_field
    base = a.ServiceInstance.objects.get(id=si.id)
    assert not hasattr(base, "color")  # the base object has the base fields only


def test_deleting_a_link_bumps_the_providers_link_deleted_count(a: Any, svc: Any) -> None:
    provider = a.WidgetAccount.objects.create(owner=svc, account_name="acct")
    subscriber = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    link = a.ServiceInstanceLink.objects.create(
        provider_service_instance=provider, subscriber_service_instance=subscriber
    )
    before = a.WidgetAccount.objects.get(id=provider.id).updated

    link.delete()

    fresh = a.WidgetAccount.objects.get(id=provider.id)
    assert fresh.link_deleted_count == 1
    assert fresh.updated > before  # so that policies of the provider run again
    assert a.ServiceInstanceLink.objects.count() == 0


def test_core_convenience_methods(a: Any, svc: Any) -> None:
    upstream = a.WidgetService.objects.create(name="upstream")
    a.ServiceDependency.objects.create(provider_service=upstream, subscriber_service=svc)
    a.ServiceAttribute.objects.create(service=svc, name="colour", value="blue")
    assert [s.id for s in svc.provider_services] == [upstream.id]
    assert svc.serviceattribute_dict == {"colour": "blue"}
    assert svc.get_service_instance_class_name() == "WidgetServiceInstance"
    assert svc.get_service_instance_class() is a.WidgetServiceInstance

    west = a.WidgetServiceInstance.objects.create(owner=svc, color="west", size=9)
    east = a.WidgetAccount.objects.create(owner=svc, account_name="east")
    a.ServiceInstanceLink.objects.create(
        provider_service_instance=east, subscriber_service_instance=west
    )
    assert [x.id for x in east.westbound_service_instances] == [west.id]
    assert east.get_westbound_service_instance_properties("size") == 9
    assert east.get_westbound_service_instance_properties("account_name", include_self=True) == (
        "east"
    )
    with pytest.raises(AttributeError):
        east.get_westbound_service_instance_properties("nothing_has_this")
    # the service's own wrapper (models/convenience/) sits on top of the core one
    assert west.account.id == east.id
    assert [link.id for link in svc.validate_links(west)] == [
        link.id for link in west.subscribed_links.all()
    ]


def test_delete_policy_handshake_delete_record_waits_for_handle_delete(
    runtime: Runtime, a: Any, svc: Any, backend: Any
) -> None:
    svc.backend_url = backend.url
    svc.save()
    a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    assert runtime.run_until_idle(timeout=60).exit_code == 0
    backend.take()
    si = a.WidgetServiceInstance.objects.get(color="red")
    assert si.subscribed_links.count() == 1
    si.delete()

    engines = {e.name: e for e in runtime.engines()}
    engines["sync"].run_pass()  # handle_delete has not run: delete_record must wait
    assert backend.take() == []
    assert a.WidgetServiceInstance.deleted_objects.count() == 1

    engines["policies"].run_pass()  # handle_delete deletes the link
    assert a.ServiceInstanceLink.objects.count() == 0
    engines["sync"].run_pass()
    assert backend.take() == [("DELETE", "/widgets/1", {"color": "red"})]
    assert a.WidgetServiceInstance.deleted_objects.count() == 0  # purged


def test_an_event_through_xoskafka_changes_the_model_and_the_dependent_sync_runs(
    runtime: Runtime, a: Any, svc: Any, backend: Any
) -> None:
    from xoskafka import XOSKafkaProducer

    svc.backend_url = backend.url
    svc.save()
    a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    assert runtime.run_until_idle(timeout=60).exit_code == 0
    assert [c[0] for c in backend.take()] == ["POST"]

    XOSKafkaProducer.init()
    XOSKafkaProducer.produce("widget.status", "red", '{"color": "red", "status": "up"}')
    assert runtime.run_until_idle(timeout=60).exit_code == 0

    assert a.WidgetServiceInstance.objects.get(color="red").oper_status == "up"
    assert backend.take() == [
        ("PUT", "/widgets/1", {"color": "red", "size": 1, "account": "acct-red", "status": "up"})
    ]


def test_scripts_through_connect_get_the_core_behaviours(service: Path) -> None:
    import xos_runtime

    a = xos_runtime.connect(service / "config.yaml")
    try:
        svc = a.WidgetService.objects.create(name="widgets")
        provider = a.WidgetAccount.objects.create(owner=svc, account_name="acct")
        subscriber = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
        link = a.ServiceInstanceLink.objects.create(
            provider_service_instance=provider, subscriber_service_instance=subscriber
        )
        assert subscriber.account.id == provider.id  # the service's convenience wrapper
        link.delete()
        assert a.WidgetAccount.objects.get(id=provider.id).link_deleted_count == 1
    finally:
        a.close()


def test_a_model_derived_from_xosbase_has_the_xosbase_fields_unstored(a: Any, svc: Any) -> None:
    device = a.GadgetDevice.objects.create(name="olt-1")
    assert (device.backend_need_delete_policy, device.xos_managed, device.backend_handle) == (
        False,
        True,
        None,
    )
    # att-workflow-driver's whitelist policy does exactly this on an XOSBase-derived model
    device.backend_need_delete_policy = True
    device.save(update_fields=["backend_need_delete_policy"])
    device.name = "olt-2"
    device.backend_handle = "of:0001/3"
    device.save(update_fields=["name", "backend_handle"])
    again = a.GadgetDevice.objects.get(id=device.id)
    assert again.name == "olt-2"  # the other fields named are written
    assert (again.backend_need_delete_policy, again.backend_handle) == (False, None)  # unstored
    # the core models declare them: stored
    # a sub-model of such a model too (olt's PONPort derives from PortBase, itself XOSBase)
    port = a.GadgetPort.objects.create(name="p", port_no=1)
    port.backend_handle = "p-1"
    port.port_no = 2
    port.save(update_fields=["backend_handle", "port_no"])
    port.save_changed_fields()
    assert a.GadgetPort.objects.get(id=port.id).port_no == 2
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="c")
    si.backend_handle = "h-1"
    si.save(update_fields=["backend_handle"])
    assert a.WidgetServiceInstance.objects.get(id=si.id).backend_handle == "h-1"


def test_the_core_models_services_link_to(a: Any, svc: Any) -> None:
    site = a.Site.objects.create(name="mysite", login_base="my")
    user = a.User.objects.create(email="admin@opencord.org", firstname="A", lastname="B", site=site)
    device = a.GadgetDevice.objects.create(name="d", creator=user)
    assert [d.id for d in user.created_gadgets.all()] == [device.id]
    assert user.timezone == "America/New_York" and user.is_active

    flavor = a.Flavor.objects.create(name="m1.small", flavor="m1.small")
    node = a.Node.objects.create(name="node1", site=site)
    image = a.Image.objects.create(name="ubuntu")
    sl = a.Slice.objects.create(
        name="myslice", site=site, creator=user, default_flavor=flavor, default_node=node
    )
    assert (sl.creator_id, sl.default_flavor.name, sl.default_node.name) == (
        user.id,
        "m1.small",
        "node1",
    )
    gadget = a.GadgetInstance.objects.create(owner=svc, slice=sl, image=image)
    assert a.ComputeServiceInstance.objects.get(id=gadget.id).leaf_model_name == "GadgetInstance"
    assert "ComputeServiceInstance" in gadget.class_names

    template = a.NetworkTemplate.objects.create(name="private")
    net = a.Network.objects.create(name="net1", template=template, owner=sl)
    link = a.ServiceInstanceLink.objects.create(
        provider_service_instance=gadget, subscriber_network=net
    )
    assert [x.id for x in net.subscribed_links.all()] == [link.id]
    port = a.ServicePort.objects.create(
        name="http", external_port=80, internal_port=8080, service=svc
    )
    assert (port.protocol, [p.name for p in svc.serviceports.all()]) == ("TCP", ["http"])


# -- reference 2.6, items 2, 3, 4, 7 and 9 ---------------------------------------------------


def test_a_base_class_query_returns_every_sub_model_row(a: Any, svc: Any) -> None:
    """2.6.2: `ServiceInstance.objects` holds the widget instances too, as base objects with
    the base's fields and convenience methods; `leaf_model` moves to the sub-model."""
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    rows = a.ServiceInstance.objects.all()
    assert [r.id for r in rows] == [si.id]
    base = rows[0]
    assert type(base).__name__ == "ServiceInstance" and base.owner_id == svc.id
    assert base.westbound_service_instances == []  # a core convenience method of the base
    assert base.leaf_model.color == "red"


def _settle(a: Any, obj: Any) -> None:
    """What an engine writes after syncing and policing `obj`: enacted and policed at its
    newest timestamp."""
    import sqlalchemy as sa

    table = a.store.table("ServiceInstance")
    with a.store.write() as conn:
        found = conn.execute(
            sa.select(table.c.updated, table.c.changed_by_step, table.c.changed_by_policy).where(
                table.c.id == obj.id
            )
        ).one()
        newest = max(t for t in found if t is not None)
        conn.execute(
            sa.update(table).where(table.c.id == obj.id).values(enacted=newest, policed=newest)
        )


def _pending(a: Any, obj: Any) -> tuple[bool, bool]:
    """(pending for sync steps, pending for policies)."""
    name = ["WidgetServiceInstance"]
    return (
        obj.id in {o.id for o in a.fetch_pending(name)},
        obj.id in {o.id for o in a.fetch_policy_pending(name)},
    )


@pytest.mark.parametrize(
    ("kind", "always", "expected"),
    [
        ("user", False, (True, True)),  # a user's save: both
        ("sync", False, (False, True)),  # a sync step's save: policies again, not sync
        ("policy", False, (True, False)),  # a policy's save: sync again, not policies
        ("event", False, (False, False)),  # an event step's save moves nothing...
        ("event", True, (True, True)),  # ...unless it says always_update_timestamp
        ("pull", True, (True, True)),
    ],
)
def test_who_saves_decides_what_runs_again(
    a: Any, svc: Any, kind: str, always: bool, expected: tuple[bool, bool]
) -> None:
    """2.6.3: the dirty/policed rules of XOS, by caller kind."""
    from xos_runtime.store import acting_as

    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    _settle(a, si)
    assert _pending(a, si) == (False, False)
    obj = a.WidgetServiceInstance.objects.get(id=si.id)
    obj.color = "blue"
    with acting_as(kind):  # type: ignore[arg-type]
        obj.save(always_update_timestamp=always)
    assert _pending(a, obj) == expected


def test_timestamps_are_comparable_numbers(a: Any, svc: Any) -> None:
    """2.6.4: plugins compare `enacted < updated` and check `policed is None`."""
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red")
    fresh = a.WidgetServiceInstance.objects.get(id=si.id)
    assert isinstance(fresh.updated, float) and isinstance(fresh.created, float)
    assert fresh.policed is None and fresh.enacted is None
    _settle(a, si)
    settled = a.WidgetServiceInstance.objects.get(id=si.id)
    assert not settled.enacted < settled.updated and settled.policed >= settled.updated


def test_a_field_set_to_none(a: Any, svc: Any) -> None:
    """2.6.7: XOS's ORM raised ValueError for any non-FK field set to None. The runtime
    refuses None for a required field (an `ObjectValidationError`, also a `ValueError`) and
    stores it for an optional one (a difference the compat README lists; no service relies
    on it); an FK set to None is legal in both."""
    si = a.WidgetServiceInstance.objects.create(owner=svc, color="red", size=3)
    si.color = None
    with pytest.raises(ValueError, match="color"):
        si.save()
    si = a.WidgetServiceInstance.objects.get(id=si.id)
    si.size = None
    si.save()
    assert a.WidgetServiceInstance.objects.get(id=si.id).size is None


PROBE_EVENT_STEP = """
import os

from xossynchronizer.event_steps.eventstep import EventStep


class ProbeEventStep(EventStep):
    topics = ["probe"]
    technology = "kafka"
    made = 0

    def __init__(self, *args, **kwargs):
        super(ProbeEventStep, self).__init__(*args, **kwargs)
        ProbeEventStep.made += 1
        self.calls = 0

    def process_event(self, event):
        self.calls += 1
        line = f"{ProbeEventStep.made} {self.calls} {type(self.log).__name__} {event.value}"
        with open(os.environ["XRT_PROBE_LOG"], "a") as f:
            f.write(line + "\\n")
"""


def test_an_event_step_gets_a_fresh_instance_per_message(
    service: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2.6.9: a new event-step instance for every message (XOS's event loop made one per
    message), with its `log` set, and the message's value as text."""
    from xoskafka import XOSKafkaProducer

    (service / "event_steps" / "probe_event.py").write_text(PROBE_EVENT_STEP)
    probe = tmp_path / "probe.log"
    monkeypatch.setenv("XRT_PROBE_LOG", str(probe))
    rt = Runtime.load(service / "config.yaml")
    rt.startup()
    try:
        XOSKafkaProducer.init()
        for n in range(3):
            XOSKafkaProducer.produce("probe", f"k{n}", f'{{"n": {n}}}')
        assert rt.run_until_idle(timeout=60).exit_code == 0
    finally:
        rt.shutdown()
        rt.close()
    lines = [line.split(" ", 3) for line in probe.read_text().splitlines()]
    assert [(made, calls, value) for made, calls, _log, value in lines] == [
        ("1", "1", '{"n": 0}'),
        ("2", "1", '{"n": 1}'),
        ("3", "1", '{"n": 2}'),
    ]
    assert all(log != "NoneType" for _made, _calls, log, _value in lines)
