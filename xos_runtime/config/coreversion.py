"""`core_version`: which XOS core API versions a synchronizer accepts, and the one we implement.

XOS's core refused a synchronizer whose `core_version` did not admit the core's own version
when it loaded the synchronizer's models. xos-runtime is that core (the embedded store, or
`xos-runtime core serve`), so the check runs at start-up of every command that opens a
runtime, against `CORE_API_VERSION`.

A `core_version` is one of:

* a version specifier as pip writes them, one or several separated by commas
  (``">=4.0.0"``, ``">=4.0,<5"``, ``"==4.0.4"``);
* ``"MIN,MAX"``: two bare versions, both inclusive (``"4.0.0,4.1.0"``);
* XOS's ``"A ~ B"``: both specifiers must admit the version;
* one bare version (``"4.0.4"``): exactly that version.

Empty or absent: every version is admitted.
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from xos_runtime.exceptions import ConfigError

__all__ = ["CORE_API_VERSION", "admits", "check_core_version", "parse_core_version"]

#: The XOS core API version xos-runtime implements (XOS 4.0.4's REST and model API).
CORE_API_VERSION = "4.0.4"


def _bare(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def parse_core_version(spec: str) -> list[SpecifierSet]:
    """The specifier sets that must all admit a version; `ValueError` names what is wrong."""
    sets: list[SpecifierSet] = []
    for part in spec.split("~") if "~" in spec and "~=" not in spec else [spec]:
        text = part.strip()
        if not text:
            raise ValueError(f"not a version specifier: {spec!r}")
        pieces = [p.strip() for p in text.split(",")]
        bare = [_bare(p) for p in pieces]
        if len(pieces) == 2 and bare[0] is not None and bare[1] is not None:
            if bare[0] > bare[1]:
                raise ValueError(f"{spec!r}: the minimum {pieces[0]} is above the maximum")
            text = f">={pieces[0]},<={pieces[1]}"
        elif len(pieces) == 1 and bare[0] is not None:
            text = f"=={pieces[0]}"
        try:
            sets.append(SpecifierSet(text))
        except InvalidSpecifier:
            raise ValueError(
                f"not a version specifier: {spec!r} (expected e.g. '>=4.0.0' or 'MIN,MAX')"
            ) from None
    return sets


def admits(spec: str | None, version: str = CORE_API_VERSION) -> bool:
    """Whether `spec` (a `core_version`; None or empty admits all) admits `version`."""
    if not spec or not spec.strip():
        return True
    v = Version(version)
    return all(s.contains(v, prereleases=True) for s in parse_core_version(spec))


def check_core_version(
    spec: str | None, *, version: str = CORE_API_VERSION, file: str | None = None
) -> None:
    """Refuse a `core_version` that does not admit `version` (the core's): `ConfigError`,
    one line naming both versions (exit 2 on the command line)."""
    try:
        ok = admits(spec, version)
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key="core_version") from None
    if not ok:
        raise ConfigError(
            f"{spec!r} does not admit the XOS core API version {version} that "
            "xos-runtime implements",
            file=file,
            key="core_version",
        )
