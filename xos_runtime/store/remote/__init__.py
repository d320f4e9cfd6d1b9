"""The remote accessor: a script's (or a command's) model accessor over an XOS core.

`open_remote("http://host:port", username=..., password=...)`, or `xos_runtime.connect()`
on such a URL or on a config whose `accessor.endpoint` is one. The HTTP client (`CoreClient`)
waits for a core that does not answer and retries what is safe to retry.
"""

from xos_runtime.store.remote.accessor import (
    MODELS_PATH,
    STATUS_PATH,
    VERSION_PATH,
    RemoteAccessor,
    RemoteStore,
    client_for,
    open_remote,
    open_settings,
)
from xos_runtime.store.remote.bookkeeping import (
    ATTEMPTS_PATH,
    SCHEDULE_PATH,
    RemoteEventAttempts,
    RemoteSchedule,
)
from xos_runtime.store.remote.client import (
    CoreAuthError,
    CoreClient,
    CoreConflict,
    CoreUnavailable,
    split_credentials,
)
from xos_runtime.store.remote.events import EVENTS_PATH, CoreEvents
from xos_runtime.store.remote.objects import RemoteObject
from xos_runtime.store.remote.query import RemoteManager, RemoteQuerySet

__all__ = [
    "ATTEMPTS_PATH",
    "EVENTS_PATH",
    "MODELS_PATH",
    "SCHEDULE_PATH",
    "STATUS_PATH",
    "VERSION_PATH",
    "CoreAuthError",
    "CoreClient",
    "CoreConflict",
    "CoreEvents",
    "CoreUnavailable",
    "RemoteAccessor",
    "RemoteEventAttempts",
    "RemoteManager",
    "RemoteObject",
    "RemoteQuerySet",
    "RemoteSchedule",
    "RemoteStore",
    "client_for",
    "open_remote",
    "open_settings",
    "split_credentials",
]
