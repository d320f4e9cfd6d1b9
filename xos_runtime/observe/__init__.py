"""Observability of a running host: Prometheus metrics, liveness and readiness, a status page.

`run` loads this package only when `metrics.enabled` is set (and with it `prometheus_client`
and `http.server`): a `run` without metrics imports none of it. One `Observer` per runtime
holds a registry of its own (several runtimes in one process do not collide), the outcome
metrics (a plugin of the outcome hooks, like any third-party observer), and serves it all
over HTTP on one daemon thread:

* `metrics` - the outcome counters and call-duration histograms, fed by the outcome hooks;
* `collectors` - what is read from the store at each scrape: objects by model and state
  (one `GROUP BY` per table), claims held, abandoned calls;
* `health` - readiness: the store answers, every engine runs, the Kafka broker answers;
* `page` - the JSON views behind the status page (graph, states, errors, an object's fields);
* `server` - the HTTP routes; `status.html` is the page itself;
* `observed` - what all of them read of the host.
"""

from __future__ import annotations

from xos_runtime.observe.observed import ObservedHost
from xos_runtime.observe.observer import Observer
from xos_runtime.observe.server import StatusServer

__all__ = ["ObservedHost", "Observer", "StatusServer"]
