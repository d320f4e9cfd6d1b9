"""The core convenience wrappers of XOS and the core-side behaviours services rely on.

`ORMWrapperService` and `ORMWrapperServiceInstance` are the bases services derive their own
wrappers from (`xosapi.convenience.service`, `xosapi.convenience.serviceinstance`); they are
also registered for `Service` and `ServiceInstance` themselves, so every service and service
instance has the methods. `ServiceInstanceLink.delete()` does what the XOS core does on that
deletion: it bumps the provider's `link_deleted_count` (olt and rcord policies react to it).
"""

from __future__ import annotations

from typing import Any

from xos_runtime_xos_compat.wrappers import ORMWrapper, register_convenience_wrapper

__all__ = [
    "ORMWrapperService",
    "ORMWrapperServiceInstance",
    "ORMWrapperServiceInstanceLink",
    "register_core_wrappers",
]


def _accessor(obj: Any) -> Any:
    return obj._meta.accessor


class ORMWrapperService(ORMWrapper):
    """Convenience methods of every `Service`."""

    @property
    def serviceattribute_dict(self) -> dict[str, Any]:
        """The service's `ServiceAttribute`s as `{name: value}`."""
        return {a.name: a.value for a in self.serviceattributes.all()}  # type: ignore[attr-defined]

    @property
    def provider_services(self) -> list[Any]:
        """The services this one subscribes to, through its `ServiceDependency`s."""
        deps = self.subscribed_dependencies.all()  # type: ignore[attr-defined]
        return [d.provider_service for d in deps if d.provider_service is not None]

    @property
    def subscribed_services(self) -> list[Any]:
        """The services that subscribe to this one."""
        deps = self.provided_dependencies.all()  # type: ignore[attr-defined]
        return [d.subscriber_service for d in deps if d.subscriber_service is not None]

    def get_service_instance_class_name(self) -> str:
        """The `ServiceInstance` sub-model this service owns: the one declared in the same
        xproto file as the service's most derived model."""
        models = _accessor(self).models
        leaf = self.__dict__.get("leaf_model_name") or self._meta.name  # type: ignore[attr-defined]
        source = models.get(leaf).source
        candidates = [
            name
            for name in models.descendants("ServiceInstance")[1:]
            if models.get(name).source == source
        ]
        if not candidates:
            raise Exception(f"Could not find a ServiceInstance model for service {leaf}")
        prefix = leaf[: -len("Service")] if leaf.endswith("Service") else leaf
        preferred = [c for c in candidates if c.startswith(prefix)]
        return (preferred or candidates)[0]

    def get_service_instance_class(self) -> Any:
        return _accessor(self).get_model_class(self.get_service_instance_class_name())

    def validate_links(self, subscriber_service_instance: Any) -> list[Any]:
        """The links of `subscriber_service_instance` whose provider this service owns."""
        matched = []
        for link in subscriber_service_instance.subscribed_links.all():
            provider = link.provider_service_instance
            if provider is not None and provider.owner_id == self.id:  # type: ignore[attr-defined]
                matched.append(link)
        return matched

    def acquire_service_instance(self, subscriber_service_instance: Any) -> Any:
        """Create a service instance of this service and link it to the subscriber."""
        accessor = _accessor(self)
        si_class = self.get_service_instance_class()
        owner_id = self.id  # type: ignore[attr-defined]
        si = si_class(
            owner_id=owner_id, name=f"{si_class.__name__}-{subscriber_service_instance.id}"
        )
        si.save()
        link = accessor.ServiceInstanceLink(
            provider_service_instance_id=si.id,
            subscriber_service_instance_id=subscriber_service_instance.id,
        )
        link.save()
        return si


class ORMWrapperServiceInstance(ORMWrapper):
    """Convenience methods of every `ServiceInstance`."""

    @property
    def serviceinstanceattribute_dict(self) -> dict[str, Any]:
        attrs = self.service_instance_attributes.all()  # type: ignore[attr-defined]
        return {a.name: a.value for a in attrs}

    def _instance(self, link: Any, column: str) -> Any:
        si_id = getattr(link, column)
        if not si_id:
            return None
        return _accessor(self).ServiceInstance.objects.get(id=si_id).leaf_model

    @property
    def westbound_service_instances(self) -> list[Any]:
        """The subscribers of this instance's provided links (most derived objects)."""
        links = self.provided_links.all()  # type: ignore[attr-defined]
        found = (self._instance(x, "subscriber_service_instance_id") for x in links)
        return [si for si in found if si is not None]

    @property
    def eastbound_service_instances(self) -> list[Any]:
        """The providers of this instance's subscribed links (most derived objects)."""
        links = self.subscribed_links.all()  # type: ignore[attr-defined]
        found = (self._instance(x, "provider_service_instance_id") for x in links)
        return [si for si in found if si is not None]

    def _bound_property(self, name: str, include_self: bool, direction: str) -> Any:
        if include_self and hasattr(self, name):
            return getattr(self, name)
        neighbours = (
            self.westbound_service_instances
            if direction == "westbound"
            else self.eastbound_service_instances
        )
        for si in neighbours:
            try:
                return si._bound_property(name, True, direction)
            except AttributeError:
                continue
        raise AttributeError(
            f"{direction} property {name} not found from {self._meta.name} {self.id}"  # type: ignore[attr-defined]
        )

    def get_westbound_service_instance_properties(
        self, prop_name: str, include_self: bool = False
    ) -> Any:
        """The first value of `prop_name` found walking westbound (towards subscribers)."""
        return self._bound_property(prop_name, include_self, "westbound")

    def get_eastbound_service_instance_properties(
        self, prop_name: str, include_self: bool = False
    ) -> Any:
        """The first value of `prop_name` found walking eastbound (towards providers)."""
        return self._bound_property(prop_name, include_self, "eastbound")


class ORMWrapperServiceInstanceLink(ORMWrapper):
    """Deleting a link bumps its provider's `link_deleted_count` (an XOS core behaviour)."""

    def delete(self) -> None:
        from xos_runtime.store.objects import ModelObject

        provider = self.provider_service_instance  # type: ignore[attr-defined]
        ModelObject.delete(self)  # type: ignore[arg-type]
        if provider is not None and not provider.deleted:
            provider.link_deleted_count = (provider.link_deleted_count or 0) + 1
            provider.save(update_fields=["link_deleted_count"], always_update_timestamp=True)


def register_core_wrappers() -> None:
    """Register the core wrappers (before the services' own, which may replace them)."""
    register_convenience_wrapper("Service", ORMWrapperService)
    register_convenience_wrapper("ServiceInstance", ORMWrapperServiceInstance)
    register_convenience_wrapper("ServiceInstanceLink", ORMWrapperServiceInstanceLink)
