"""Plugins from the `*_dir` options: every `.py` file of a directory, imported on its own.

Rules (the same for the four kinds, unlike XOS, whose four loaders disagreed):

* the directory is not searched recursively; a file is loaded when it ends in `.py`, is not
  `__init__.py`, and its name starts neither with `test` nor with `.`;
* each file is imported as `xos_runtime_plugins_dir.<dir-name>_<hash-of-dir>.<stem>`, so two
  directories' `sync_user.py` are two modules. The directory is a package under that name
  (without running an `__init__.py`), so a relative import (`from . import helpers`) reaches
  a sibling file under a unique name too; while a file is imported its directory is also on
  `sys.path`, so XOS-style absolute imports of siblings (`import helpers`) keep working;
* before any file is imported, the parent folder of each plugin directory goes first on
  `sys.path`, for the life of the process, as in XOS (where the synchronizer's root, which
  holds the `*_dir` folders, is the entry script's folder): plugins import the root's
  modules by bare name (`from helpers import ...`), also later, from inside their calls;
* a class is a plugin when it subclasses (anywhere in its MRO) the base class of the
  directory's kind, is defined in that file (not imported into it), is not the base class
  itself, and is neither abstract nor named with a leading underscore (the way to write a
  shared intermediate base class).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType

from loguru import logger

from xos_runtime.plugins.failures import FailureLog, describe_exception
from xos_runtime.plugins.table import DIR_OPTIONS, KIND_BASES, PluginInfo, StepKind

__all__ = [
    "ROOT_PACKAGE",
    "DirectoryLoader",
    "package_name_for",
    "parents_on_sys_path",
    "plugin_files",
]

#: The package under which the modules of every plugin directory are imported.
ROOT_PACKAGE = "xos_runtime_plugins_dir"


def package_name_for(directory: str) -> str:
    """The unique package name of a plugin directory: `ROOT_PACKAGE.<name>_<hash>`."""
    real = os.path.realpath(directory)
    digest = hashlib.sha1(real.encode(), usedforsecurity=False).hexdigest()[:12]
    slug = re.sub(r"\W", "_", os.path.basename(real)) or "dir"
    return f"{ROOT_PACKAGE}.{slug}_{digest}"


def plugin_files(directory: str) -> list[str]:
    """The files of `directory` that are loaded as plugin modules, sorted by name."""
    with os.scandir(directory) as entries:
        return sorted(
            entry.path
            for entry in entries
            if entry.name.endswith(".py")
            and entry.name != "__init__.py"
            and not entry.name.startswith(("test", "."))
            and entry.is_file()
        )


def parents_on_sys_path(directories: Iterable[str]) -> list[str]:
    """Put the parent folder of each directory first on `sys.path` (once); return those added.

    The first directory's parent ends up first. Never undone: modules imported later, from
    inside a plugin's calls, must still be found.
    """
    parents: list[str] = []
    for directory in directories:
        parent = os.path.dirname(os.path.realpath(directory))
        if parent not in parents:
            parents.append(parent)
    added = []
    for parent in reversed(parents):
        if parent in sys.path:
            continue
        sys.path.insert(0, parent)
        added.append(parent)
    return added[::-1]


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    added = directory not in sys.path
    if added:
        sys.path.append(directory)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def _ensure_package(name: str, path: list[str]) -> None:
    package = sys.modules.get(name)
    if package is None or list(getattr(package, "__path__", ())) != path:
        package = ModuleType(name)
        package.__path__ = path
        package.__package__ = name
        sys.modules[name] = package


def _plugin_classes(module: ModuleType, base: type) -> list[type]:
    return [
        obj
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == module.__name__
        and not name.startswith("_")
        and not inspect.isabstract(obj)
    ]


class DirectoryLoader:
    """Loads the plugin directories of one discovery.

    A file is imported once per loader even when one directory is given for several kinds
    (XOS deployments sometimes point two options at one directory); a new loader imports it
    afresh, so that a second discovery in one process sees edited files.
    """

    def __init__(
        self, failures: FailureLog, directories: Mapping[StepKind, str | None] | None = None
    ):
        """`directories`: the directory configured for each kind, so that a plugin class of
        one kind found in another kind's directory can be named with the right option."""
        self._failures = failures
        self._directories = {
            kind: os.path.realpath(d) for kind, d in (directories or {}).items() if d
        }
        self._modules: dict[str, ModuleType | None] = {}
        self._packages: set[str] = set()

    def load(
        self,
        directory: str,
        kind: StepKind,
        *,
        skip_file: Callable[[str], bool] | None = None,
    ) -> list[PluginInfo]:
        """The plugins of `kind` defined in the files of `directory`.

        A file for which `skip_file(path)` is true is not imported.
        """
        option = DIR_OPTIONS[kind]
        if not os.path.isdir(directory):
            self._failures.add(f"plugin directory {directory} ({option}) is not a directory")
            return []
        base = KIND_BASES[kind]
        infos = []
        for path in plugin_files(directory):
            if skip_file is not None and skip_file(path):
                continue
            module = self._import(path, option)
            if module is None:
                continue
            classes = _plugin_classes(module, base)
            if not classes:
                logger.debug("{} ({}) defines no {} subclass", path, option, base.__name__)
            self._warn_misplaced(module, path, directory, kind)
            infos += [
                PluginInfo(
                    kind=kind,
                    name=cls.__name__,
                    target=f"{module.__name__}:{cls.__qualname__}",
                    cls_or_module=cls,
                    file=path,
                )
                for cls in classes
            ]
        return infos

    def _warn_misplaced(
        self, module: ModuleType, path: str, directory: str, kind: StepKind
    ) -> None:
        """A plugin class of another kind is not loaded from this directory: say where it
        belongs (a `ModelPolicy` in `steps_dir` was silently ignored). Not when the same
        directory is configured for that kind too (it is loaded from there)."""
        here = os.path.realpath(directory)
        for other, other_base in KIND_BASES.items():
            if other == kind or self._directories.get(other) == here:
                continue
            for cls in _plugin_classes(module, other_base):
                if issubclass(cls, KIND_BASES[kind]):
                    continue
                logger.warning(
                    "{}: {} is a {}, which {} does not load; put it in {}",
                    path,
                    cls.__name__,
                    other_base.__name__,
                    DIR_OPTIONS[kind],
                    DIR_OPTIONS[other],
                )

    def _import(self, path: str, option: str) -> ModuleType | None:
        real = os.path.realpath(path)
        if real in self._modules:
            return self._modules[real]
        directory = os.path.dirname(real)
        package = package_name_for(directory)
        stem = os.path.splitext(os.path.basename(real))[0]
        name = f"{package}.{stem}"
        if package not in self._packages:
            self._packages.add(package)
            _ensure_package(ROOT_PACKAGE, [])
            _ensure_package(package, [directory])
            # Forget the modules a previous discovery imported from this directory (siblings
            # reached by relative imports included), so that edited files are read afresh.
            for stale in [m for m in sys.modules if m.startswith(package + ".")]:
                del sys.modules[stale]
        spec = importlib.util.spec_from_file_location(name, real)
        module: ModuleType | None = None
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                with _on_sys_path(directory):
                    spec.loader.exec_module(module)
            except (Exception, SystemExit) as exc:
                sys.modules.pop(name, None)
                module = None
                self._failures.add(
                    f"plugin file {path} ({option}) failed to load: {describe_exception(exc)}",
                    exc,
                )
        else:
            self._failures.add(f"plugin file {path} ({option}) cannot be imported")
        self._modules[real] = module
        return module
