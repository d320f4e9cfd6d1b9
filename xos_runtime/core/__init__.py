"""The XOS core: `xos-runtime core serve`, the XOS REST API over a store, its users and auth.

Above `host` in the layers (it serves a loaded runtime's store); no engine imports it. Its
libraries (Starlette, uvicorn, argon2) are imported by the `core` commands only.
"""

from xos_runtime.core.app import build_app
from xos_runtime.core.auth import FailureLimit
from xos_runtime.core.errors import ApiError
from xos_runtime.core.users import ROLES, Role, User, Users

__all__ = ["ROLES", "ApiError", "FailureLimit", "Role", "User", "Users", "build_app"]
