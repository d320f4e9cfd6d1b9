"""xos-runtime-xos-compat: run XOS 4.0 service synchronizers unmodified on xos-runtime.

Installing this distribution provides the XOS import names (`xossynchronizer`, `xosconfig`,
`multistructlog`, `xoskafka`, `xosapi`) as thin adapters over xos-runtime's own machinery,
and contributes the XOS core models (`Service`, `ServiceInstance`, ...) through the
`xos_runtime_models` hook. The modules:

* `binding`: the runtime the XOS names act on, and model stand-ins for import time;
* `adapt`: fitting XOS-written step classes to the runtime's calls;
* `structlogger`: structlog-style loggers over loguru (`multistructlog`);
* `config`: `xosconfig.Config` over the service's own config file;
* `wrappers`, `core`: convenience wrappers (`xosapi.orm`) and the core ones;
* `loading`: loading services' `models/convenience/*.py`;
* `hooks`: the pluggy hook implementations.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
