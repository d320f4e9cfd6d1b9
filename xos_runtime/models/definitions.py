"""Model definitions: what an xproto file declares, in a form the store and the engines use.

The parser (`xos_runtime.models.xproto`) produces these records; the store builds tables and
accessor classes from them; the engines read links to order work. They are frozen, and they
serialise to plain JSON (`ModelSet.to_json`) so that a store remembers the models it was built
with and `connect("sqlite:///x.db")` works in a process that never saw the xproto files.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

#: xproto scalar types and the Python type a value of each reads back as.
SCALAR_TYPES: dict[str, type] = {
    "string": str,
    "text": str,
    "bool": bool,
    "int32": int,
    "uint32": int,
    "int64": int,
    "uint64": int,
    "float": float,
    "double": float,
}

#: The parent name that means "no parent": XOS models derive from XOSBase, whose fields every
#: model carries as bookkeeping (see `BOOKKEEPING_FIELDS`).
ROOT_BASE = "XOSBase"


class _NoDefault:
    """Marker for a field declared without a default (distinct from `default = None`)."""

    _instance: _NoDefault | None = None

    def __new__(cls) -> _NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __bool__(self) -> bool:
        return False


NO_DEFAULT: Any = _NoDefault()


@attrs.frozen
class Field:
    """A scalar field of a model.

    `required` is the xproto modifier: a required field without a default must be given when
    an object is created. `null` allows None to be stored (true for optional fields unless
    the options say `null = False`).
    """

    name: str
    type: str
    required: bool = False
    number: int = 0
    default: Any = NO_DEFAULT
    null: bool = True
    blank: bool = True
    max_length: int | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    declared_in: str = ""

    @property
    def python_type(self) -> builtins.type:
        return SCALAR_TYPES[self.type]

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    @property
    def column(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        d["options"] = dict(self.options)
        if not self.has_default:
            del d["default"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Field:
        return cls(**{**d, "default": d.get("default", NO_DEFAULT)})


@attrs.frozen
class Link:
    """A `manytoone` link: `required manytoone site->Site:users = 2;`.

    The object stores the target's id in the column `<name>_id`; `obj.<name>` reads the target
    object, and `target.<reverse_name>` is a manager over the objects that link to it. A
    required link cascades soft deletion from the target to the linking object.
    """

    name: str
    target: str
    reverse_name: str | None = None
    required: bool = False
    number: int = 0
    options: Mapping[str, Any] = attrs.field(factory=dict)
    declared_in: str = ""

    @property
    def column(self) -> str:
        return f"{self.name}_id"

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Link:
        return cls(**d)


@attrs.frozen
class Model:
    """One `message` of an xproto file. `parent` is None for a root model (XOSBase)."""

    name: str
    parent: str | None = None
    fields: tuple[Field, ...] = ()
    links: tuple[Link, ...] = ()
    options: Mapping[str, Any] = attrs.field(factory=dict)
    source: str = ""
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parent": self.parent,
            "fields": [f.to_dict() for f in self.fields],
            "links": [link.to_dict() for link in self.links],
            "options": dict(self.options),
            "source": self.source,
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Model:
        return cls(
            name=d["name"],
            parent=d.get("parent"),
            fields=tuple(Field.from_dict(f) for f in d.get("fields", ())),
            links=tuple(Link.from_dict(x) for x in d.get("links", ())),
            options=dict(d.get("options", {})),
            source=d.get("source", ""),
            line=d.get("line", 0),
        )


def _bk(name: str, type_: str, default: Any, null: bool = False) -> Field:
    return Field(name=name, type=type_, default=default, null=null, declared_in=ROOT_BASE)


#: The XOS bookkeeping fields every model carries (contract section 4). Timestamps are float
#: Unix epoch seconds; None means "never".
BOOKKEEPING_FIELDS: tuple[Field, ...] = (
    _bk("created", "double", None, null=True),
    _bk("updated", "double", None, null=True),
    _bk("enacted", "double", None, null=True),
    _bk("policed", "double", None, null=True),
    _bk("deleted", "bool", False),
    _bk("write_protect", "bool", False),
    _bk("lazy_blocked", "bool", False),
    _bk("no_sync", "bool", False),
    _bk("no_policy", "bool", False),
    _bk("backend_status", "text", "Provisioning in progress"),
    _bk("backend_code", "int32", 0),
    _bk("backend_register", "text", "{}"),
    _bk("backend_need_delete", "bool", False),
    _bk("backend_need_reap", "bool", False),
    _bk("policy_status", "text", "Policy in process"),
    _bk("policy_code", "int32", 0),
    _bk("leaf_model_name", "string", None, null=True),
    _bk("changed_by_step", "double", None, null=True),
    _bk("changed_by_policy", "double", None, null=True),
)

BOOKKEEPING_NAMES: frozenset[str] = frozenset(f.name for f in BOOKKEEPING_FIELDS) | {"id"}


#: Bookkeeping fields a user may set (the `objects` command, the core's REST API): the flags
#: that steer the engines. The rest is the runtime's (and synchronizers') to write.
USER_SETTABLE_FLAGS: frozenset[str] = frozenset(
    {"write_protect", "lazy_blocked", "no_sync", "no_policy"}
)


def is_bookkeeping(field_name: str) -> bool:
    """XOS's rule: a change to these never counts as a change of the object's data."""
    return (
        field_name in BOOKKEEPING_NAMES
        or field_name.startswith("backend_")
        or field_name.startswith("policy_")
    )


@attrs.frozen
class ModelSet:
    """Every model the runtime knows, keyed by name, in declaration order.

    Built by `xos_runtime.models.load_models` (which validates it) or from JSON stored in a
    store. Lookups of an unknown name raise `KeyError` with the name.
    """

    models: Mapping[str, Model] = attrs.field(factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.models

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(name) from None

    def ancestors(self, name: str) -> list[str]:
        """The model and its parents, most derived first, root last."""
        chain = [name]
        parent = self.get(name).parent
        while parent is not None and parent in self.models:
            chain.append(parent)
            parent = self.models[parent].parent
        return chain

    def root(self, name: str) -> str:
        return self.ancestors(name)[-1]

    def children(self, name: str) -> list[str]:
        return [m.name for m in self.models.values() if m.parent == name]

    def descendants(self, name: str) -> list[str]:
        """The model and every model derived from it, the model first."""
        out = [name]
        i = 0
        while i < len(out):
            out.extend(self.children(out[i]))
            i += 1
        return out

    def all_fields(self, name: str) -> tuple[Field, ...]:
        """Bookkeeping fields, then the root's fields, down to the model's own."""
        fields: list[Field] = list(BOOKKEEPING_FIELDS)
        for anc in reversed(self.ancestors(name)):
            fields.extend(self.models[anc].fields)
        return tuple(fields)

    def all_links(self, name: str) -> tuple[Link, ...]:
        links: list[Link] = []
        for anc in reversed(self.ancestors(name)):
            links.extend(self.models[anc].links)
        return tuple(links)

    def reverse_links(self, name: str) -> list[tuple[str, Link]]:
        """(declaring model, link) for every link whose target is `name` or an ancestor of it."""
        targets = set(self.ancestors(name))
        return [
            (m.name, link)
            for m in self.models.values()
            for link in m.links
            if link.target in targets
        ]

    def links_to(self, name: str) -> list[tuple[str, Link]]:
        """(declaring model, link) for every link whose target is exactly `name`."""
        return [
            (m.name, link) for m in self.models.values() for link in m.links if link.target == name
        ]

    def merged(self, other: Iterable[Model]) -> ModelSet:
        models = dict(self.models)
        for m in other:
            models[m.name] = m
        return ModelSet(models)

    def to_json(self) -> str:
        return json.dumps([m.to_dict() for m in self.models.values()], sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSet:
        return cls({d["name"]: Model.from_dict(d) for d in json.loads(text)})
