"""What `/metrics` reads from the store and the host at each scrape.

Objects by model and state come from one `GROUP BY` query per table (`count_states`, the rule
of `status`), never from reading every row. When the store does not answer, the scrape still
succeeds, with `xos_runtime_store_up 0` and no object counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from loguru import logger
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xos_runtime.engines import count_states
from xos_runtime.observe.observed import ObservedHost

__all__ = ["HostCollector"]


class HostCollector(Collector):
    """Objects by model and state, claims held, abandoned calls, whether the store answers."""

    def __init__(self, host: ObservedHost):
        self.host = host

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "xos_runtime_store_up", "1 if the store answered this scrape's queries, else 0."
        )
        objects = GaugeMetricFamily(
            "xos_runtime_objects",
            "Objects in the store, by model and state.",
            labels=["model", "state"],
        )
        claims = GaugeMetricFamily(
            "xos_runtime_claims",
            "Claims this process holds on a shared store, by engine (sync, policy).",
            labels=["kind"],
        )
        try:
            counts = count_states(self.host.accessor, self.host.clock())
            held = self.host.claims_held()
        except Exception as exc:  # the store is down: say so, do not fail the scrape
            logger.debug("metrics: the store did not answer: {}", exc)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            for model, states in sorted(counts.items()):
                for state, n in sorted(states.items()):
                    if state != "total":
                        objects.add_metric([model, state], n)
            for kind, n in sorted(held.items()):
                claims.add_metric([kind], n)
        abandoned = GaugeMetricFamily(
            "xos_runtime_abandoned_calls",
            "Calls abandoned after a timeout that have not returned yet, by engine.",
            labels=["engine"],
        )
        for engine, n in sorted(self.host.abandoned_calls().items()):
            abandoned.add_metric([engine], n)
        yield from (up, objects, claims, abandoned)
