"""Reading a YAML config file into `Settings`, with messages that name the file and key.

The checks are made by one schema walker over the settings classes (`_build`): the type of
each value comes from the field's annotation, the value rules from the field's validators
(`settings`), and the load-time work (paths, ``@password`` files, the default store URL)
from the field's metadata. The walker visits the keys in a fixed order: first the unknown
keys of a mapping (in file order), then the fields in declaration order, depth first. The
first problem found is raised as one `ConfigError` (``FILE: KEY.PATH: what is wrong``);
nothing is half-applied.

Unlike XOS, a value is never replaced by a default because it is falsy: ``false``, ``0``,
``""`` and ``[]`` are taken as written. ``null`` (or leaving the key out) means the default.
"""

from __future__ import annotations

import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, Union

import attrs
import yaml
from loguru import logger

from xos_runtime.exceptions import ConfigError

from . import CONFIG_ENV_VAR
from .settings import LEGACY_KEYS, Settings, config_keys, default_store_url, did_you_mean
from .text import NotUtf8Error, decode_utf8

__all__ = ["CONFIG_ENV_VAR", "load_config", "loaded_config_file", "settings_from_dict"]

T = TypeVar("T")

#: The absolute path of the config file `load_config` read last in this process.
_last_loaded: list[str] = []


def loaded_config_file() -> str | None:
    """The absolute path of the config file `load_config` read last, or None.

    For plugins written against XOS, whose `xosconfig.Config()` is a process-wide singleton
    that plugin modules read while they are imported (before any hook is called).
    """
    return _last_loaded[-1] if _last_loaded else None


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] = os.environ
) -> Settings:
    """Read and check the config file `path` (default: ``$XOS_CONFIG_FILE``).

    Relative paths in the file are relative to the file's folder. Raises `ConfigError` for
    a missing or unreadable file, invalid YAML (``FILE:LINE:COLUMN: ...``) or any value that
    does not fit (``FILE: KEY.PATH: ...``).
    """
    if path is None:
        path = environ.get(CONFIG_ENV_VAR) or None
    if path is None:
        raise ConfigError(f"no configuration file: pass -C FILE or set {CONFIG_ENV_VAR}")
    file = os.fspath(path)
    try:
        with open(file, "rb") as stream:
            text = decode_utf8(stream.read())
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except NotUtf8Error as exc:
        raise ConfigError(str(exc), file=file) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file: {exc.strerror or exc}", file=file
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
        raise ConfigError(f"invalid YAML: {problem}", file=where) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from exc
    source = os.path.abspath(file)
    settings = _settings(data, file=file, source=source, base_dir=os.path.dirname(source))
    _last_loaded[:] = [source]
    return settings


def settings_from_dict(
    data: Mapping[str, Any], *, source: str | None = None, base_dir: str | None = None
) -> Settings:
    """Check `data` (a parsed config) as `load_config` would and build `Settings`.

    Relative paths are resolved against `base_dir`, by default the folder of `source`, or
    the current directory. Errors name `source` as the file when it is given.
    """
    if source is not None:
        source = os.path.abspath(source)
    if base_dir is None:
        base_dir = os.path.dirname(source) if source else os.getcwd()
    return _settings(data, file=source, source=source, base_dir=os.path.abspath(base_dir))


# --- YAML -------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


# --- the schema walker ------------------------------------------------------------------------


@attrs.define
class _Context:
    """What the walker needs besides the data: where errors point and paths start."""

    file: str | None
    base_dir: str
    values: dict[str, Any] = attrs.Factory(dict)  # fields marked `context`, by name

    def error(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=key or None)

    def resolve(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(path)))


def _settings(data: Any, *, file: str | None, source: str | None, base_dir: str) -> Settings:
    ctx = _Context(file=file, base_dir=base_dir)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ctx.error(None, f"expected a mapping of keys at the top level, got {_show(data)}")
    legacy = {k: v for k, v in data.items() if k in LEGACY_KEYS}
    for key in legacy:
        logger.debug("{}: {}: legacy XOS key, ignored", file or "<config>", key)
    current = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
    internal = {"source": source, "base_dir": base_dir, "legacy": legacy}
    return _build(Settings, current, "", ctx, internal)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _build(
    cls: type[T], data: Mapping[Any, Any], prefix: str, ctx: _Context, extra: Mapping[str, Any]
) -> T:
    fields = config_keys(cls)
    for key in data:
        if not isinstance(key, str):
            raise ctx.error(prefix, f"keys must be strings, got {_show(key)}")
        if key not in fields:
            known = set(fields) | (LEGACY_KEYS if cls is Settings else set())
            hint = did_you_mean(key, known) or f" (expected one of: {', '.join(fields)})"
            raise ctx.error(_join(prefix, key), f"unknown key{hint}")

    kwargs: dict[str, Any] = dict(extra)
    for name, field in fields.items():
        key = _join(prefix, name)
        value = data.get(name)
        if value is None:
            derive = field.metadata.get("derive")
            if derive is not None:
                value = _DERIVED[derive](ctx)
            elif field.default is attrs.NOTHING:
                raise ctx.error(key, "required key is missing")
            else:
                continue  # the field's own default
        else:
            pre = field.metadata.get("pre")
            if pre is not None:
                value = _PRE[pre](value, key, ctx)
            value = _convert(value, _hints(cls)[name], key, ctx)
            load = field.metadata.get("load")
            if load is not None:
                transform = _LOAD[load]
                if isinstance(value, list):
                    value = [transform(v, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
                else:
                    value = transform(value, key, ctx)
        if callable(field.converter):
            value = field.converter(value)
        if field.validator is not None:  # check now, so errors come in field order
            try:
                field.validator(None, field, value)
            except ConfigError as exc:
                raise _rekeyed(exc, prefix, ctx) from None
        if field.metadata.get("context"):
            ctx.values[name] = value
        kwargs[field.alias or name] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a rule between fields (e.g. backoff max >= initial)
        raise _rekeyed(exc, prefix, ctx) from None


def _rekeyed(exc: ConfigError, prefix: str, ctx: _Context) -> ConfigError:
    """A settings class's error (keyed by field name) with the file and the full key path."""
    if exc.file is not None:
        return exc
    return ctx.error(_join(prefix, exc.key or ""), exc.message)


_hint_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _hint_cache.get(cls)
    if hints is None:
        hints = _hint_cache[cls] = typing.get_type_hints(cls)
    return hints


def _convert(value: Any, tp: Any, key: str, ctx: _Context) -> Any:
    """Check that `value` (not None) is of type `tp`; return it in that type."""
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, inner, key, ctx)
    if tp is Any:
        return value
    ok: bool
    if origin is Literal or tp is str:
        ok = isinstance(value, str)
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ctx.error(key, f"expected a finite number, got {_show(value)}")
        if ok:
            value = float(value)
    elif origin is list:
        if not isinstance(value, list):
            raise ctx.error(key, f"expected {_describe(tp)}, got {_show(value)}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
    elif origin is dict or tp is dict:
        ok = isinstance(value, Mapping)
        if ok:
            value = dict(value)
    elif attrs.has(tp):
        if not isinstance(value, Mapping):
            raise ctx.error(key, f"expected {_describe(tp)}, got {_show(value)}")
        return _build(tp, value, key, ctx, {})
    else:  # pragma: no cover - a settings field of a type the walker does not know
        raise TypeError(f"settings field {key} has unsupported type {tp!r}")
    if not ok:
        raise ctx.error(key, f"expected {_describe(tp)}, got {_show(value)}")
    return value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])[2:]}s"
    names = {str: "a string", bool: "a boolean (true/false)", int: "an integer"}
    names.update({float: "a number", dict: "a mapping"})
    return names.get(tp, names.get(origin, "a mapping"))


def _show(value: Any) -> str:
    """A value as YAML would spell it, with its YAML type, for messages."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (boolean)"
    if value is None:
        return "null"
    kind = {str: "string", int: "integer", float: "number", list: "list", dict: "mapping"}
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind.get(type(value), type(value).__name__)})"


# --- raw-value transforms (`pre`), defaults (`derive`), load-time work (`load`) ---------------


def _one_or_many(value: Any, key: str, ctx: _Context) -> Any:
    return [value] if isinstance(value, str) else value


def _logging_section(value: Any, key: str, ctx: _Context) -> Any:
    """An XOS logging value is a whole dictConfig; it becomes ``dict_config``."""
    if isinstance(value, Mapping) and "version" in value:
        version = value["version"]
        if isinstance(version, bool) or version != 1:
            raise ctx.error(
                f"{key}.version",
                f"a logging dictConfig needs 'version: 1', got {_show(version)}",
            )
        return {"dict_config": dict(value)}
    return value


def _derived_store_url(ctx: _Context) -> str:
    return default_store_url(ctx.base_dir, ctx.values.get("name", "xos"))


def _load_store_url(value: str, key: str, ctx: _Context) -> str:
    """Make a relative ``sqlite:///PATH`` absolute; other URLs are kept as written."""
    prefix = "sqlite:///"
    if not value.lower().startswith(prefix):
        return value
    path, sep, query = value[len(prefix) :].partition("?")
    if path.startswith("/") or path in ("", ":memory:") or path.startswith("file:"):
        return value
    return prefix + ctx.resolve(path) + sep + query


def _load_secret(value: str, key: str, ctx: _Context) -> str:
    """``@PATH`` -> the first line of that file, stripped."""
    if not value.startswith("@"):
        return value
    if value == "@":
        raise ctx.error(key, "'@' must be followed by the path of a password file")
    path = ctx.resolve(value[1:])
    try:
        with open(path, "rb") as stream:
            return decode_utf8(stream.readline()).strip()
    except (OSError, NotUtf8Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ctx.error(key, f"cannot read password file {path!r}: {reason}") from exc


def _check_path(value: str, key: str, ctx: _Context) -> str:
    if not value:
        raise ctx.error(key, "empty path (leave the key out or use null for none)")
    return ctx.resolve(value)


#: Where XOS's containers hold a synchronizer (`/opt/xos/synchronizers/<name>/...`): the
#: paths of every published service config start there.
XOS_SYNCHRONIZERS = "/opt/xos/synchronizers/"


def _load_dir(value: str, key: str, ctx: _Context) -> str:
    path = _check_path(value, key, ctx)
    if not os.path.exists(path):
        path = _outside_xos_container(path, key, ctx)
    if not os.path.isdir(path):
        what = "not a directory" if os.path.exists(path) else "directory does not exist"
        raise ctx.error(key, f"{what}: {path!r}")
    return path


def _outside_xos_container(path: str, key: str, ctx: _Context) -> str:
    """A missing `/opt/xos/synchronizers/<name>/<rest>` (an XOS service's own config, written
    for its container) read as `<rest>` next to the config file, where the service's folder
    holds it; any other path as given."""
    if not path.startswith(XOS_SYNCHRONIZERS):
        return path
    _name, _, rest = path[len(XOS_SYNCHRONIZERS) :].partition("/")
    local = os.path.normpath(os.path.join(ctx.base_dir, rest))
    if not rest or not os.path.exists(local):
        return path
    logger.debug("{}: {} is not here (XOS's container layout): using {}", key, path, local)
    return local


def _load_file(value: str, key: str, ctx: _Context) -> str:
    path = _check_path(value, key, ctx)
    if not os.path.isfile(path):
        what = "not a file" if os.path.exists(path) else "file does not exist"
        raise ctx.error(key, f"{what}: {path!r}")
    return path


def _load_new_file(value: str, key: str, ctx: _Context) -> str:
    path = _check_path(value, key, ctx)
    if os.path.isdir(path):
        raise ctx.error(key, f"is a directory: {path!r}")
    return path


def _load_rotation(value: str, key: str, ctx: _Context) -> str:
    """Let loguru parse the rotation now, on a sink that never opens nor writes its file."""
    try:
        sink = logger.add(
            os.path.join(ctx.base_dir, ".xos-rotation-check.log"),
            rotation=value,
            delay=True,
            filter=lambda _record: False,
        )
    except (ValueError, TypeError) as exc:
        raise ctx.error(key, f"invalid rotation {value!r}: {exc}") from exc
    logger.remove(sink)
    return value


_PRE: dict[str, Callable[[Any, str, _Context], Any]] = {
    "one_or_many": _one_or_many,
    "logging": _logging_section,
}
_DERIVED: dict[str, Callable[[_Context], Any]] = {"store_url": _derived_store_url}
_LOAD: dict[str, Callable[[Any, str, _Context], Any]] = {
    "store_url": _load_store_url,
    "secret": _load_secret,
    "dir": _load_dir,
    "file": _load_file,
    "new_file": _load_new_file,
    "rotation": _load_rotation,
}
