"""Model classes by name: what every accessor, local or over a core, is first of all.

XOS's `model_accessor` hands out one class per model (`accessor.Site`,
`get_model_class("Site")`); a class is built once per model definition, parents first, by
the accessor's own builder (`build_model_class` over a store, `build_remote_class` over a
core). The lookup rules live here, once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from xos_runtime.exceptions import StoreError
from xos_runtime.models.definitions import ModelSet
from xos_runtime.store.objects import ModelObject

__all__ = ["ModelClasses"]

C = TypeVar("C", bound=ModelObject)


class ModelClasses(Generic[C]):
    """The classes of `models`, built by `_make_class(name, parent class)`; attributes of
    the accessor by model name."""

    #: Where the models are, for the message of a missing attribute ("in this store").
    _where = "in this store"

    @property
    def models(self) -> ModelSet:
        raise NotImplementedError

    def _make_class(self, name: str, parent: type[C] | None) -> type[C]:
        raise NotImplementedError

    def _build_all(self) -> None:
        self._classes: dict[str, type[C]] = {}
        for model in self.models:
            self._build(model.name)

    def _build(self, name: str) -> type[C]:
        if name not in self._classes:
            parent = self.models.get(name).parent
            parent_cls = (
                self._build(parent) if parent is not None and parent in self.models else None
            )
            self._classes[name] = self._make_class(name, parent_cls)
        return self._classes[name]

    def __getattr__(self, name: str) -> type[C]:
        classes = self.__dict__.get("_classes")
        if classes is not None and name in classes:
            return classes[name]
        raise AttributeError(f"no model named {name!r} {self._where}")

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._classes]

    # -- XOS ModelAccessor API ---------------------------------------------------------------

    def get_model_class(self, name: str) -> type[C]:
        try:
            return self._classes[name]
        except KeyError:
            raise StoreError(
                f"no model named {name!r}; known models: {', '.join(self._classes)}"
            ) from None

    def has_model_class(self, name: str) -> bool:
        return name in self._classes

    def get_all_model_classes(self) -> dict[str, type[C]]:
        return dict(self._classes)
