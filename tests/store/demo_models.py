"""Model definitions for store tests, built directly (the parser has tests of its own)."""

from __future__ import annotations

from xos_runtime.models.definitions import Field, Link, Model, ModelSet


def f(name: str, type_: str, model: str, **kw: object) -> Field:
    if kw.get("required"):
        kw.setdefault("null", False)
        kw.setdefault("blank", False)
    return Field(name=name, type=type_, declared_in=model, **kw)  # type: ignore[arg-type]


def link(name: str, target: str, model: str, reverse: str | None, required: bool) -> Link:
    return Link(
        name=name, target=target, reverse_name=reverse, required=required, declared_in=model
    )


def demo_models(extra: tuple[Model, ...] = ()) -> ModelSet:
    models = [
        Model(
            "Site",
            fields=(
                f("name", "string", "Site", required=True, max_length=20),
                f("enabled", "bool", "Site", default=True),
                f("max_users", "int32", "Site", default=10),
            ),
        ),
        Model(
            "User",
            fields=(f("email", "string", "User", required=True), f("score", "double", "User")),
            links=(link("site", "Site", "User", "users", True),),
        ),
        Model(
            "Slice",
            fields=(f("name", "string", "Slice", required=True),),
            links=(
                link("site", "Site", "Slice", "slices", True),
                link("creator", "User", "Slice", "created_slices", False),
            ),
        ),
        Model("Service", fields=(f("name", "string", "Service", required=True),)),
        Model("VSGService", "Service", fields=(f("vlan", "int32", "VSGService", default=1),)),
        Model("VRouterService", "Service", fields=(f("asn", "uint64", "VRouterService"),)),
    ]
    return ModelSet({m.name: m for m in [*models, *extra]})
