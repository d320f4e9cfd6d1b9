"""How a broken plugin is reported: one line per plugin, then either an error or warnings.

Without `skip_broken`, discovery and validation collect every failure and raise one
`PluginError` whose message holds them all (one line each), so that an operator sees every
broken plugin at once. With `skip_broken`, each failure is logged as a warning when it is
found and the plugin is left out.
"""

from __future__ import annotations

import attrs
from loguru import logger

from xos_runtime.exceptions import PluginError

__all__ = ["SKIPPED_BY_CONFIG", "FailureLog", "describe_exception"]

#: Why broken plugins are skipped when the config says so.
SKIPPED_BY_CONFIG = "plugins.skip_broken is set"


def describe_exception(exc: BaseException) -> str:
    """`TypeName: message`, the way a failure's cause reads in a message."""
    # One line: pluggy's validation errors, for one, span several.
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@attrs.define
class FailureLog:
    """Collects failure messages; warns at once when broken plugins are skipped."""

    skip_broken: bool = False
    messages: list[str] = attrs.field(factory=list)
    #: Why a broken plugin is skipped (said in its warning).
    why: str = SKIPPED_BY_CONFIG

    def add(self, message: str, exc: BaseException | None = None) -> None:
        self.messages.append(message)
        if self.skip_broken:
            logger.warning("{} (skipped: {})", message, self.why)
        if exc is not None:
            logger.opt(exception=exc).debug("traceback of: {}", message)

    def raise_unless_skipping(self, since: int = 0) -> None:
        """Raise `PluginError` with the failures added after the first `since` ones, if any."""
        new = self.messages[since:]
        if new and not self.skip_broken:
            raise PluginError("\n".join(new))
