"""The built-in engines, registered as a plugin of the same hook contract as any other.

The host registers this module first; `xos_runtime_engines` builds the engines the loaded
plugins need, in the order a pass runs them: pull, events, policies, sync (then delete), all
reporting their outcomes to one `HookSink`. The pull and event engines are imported only when
a plugin has pull or event steps: most synchronizers have neither, and every command that
loads the runtime imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.policy import PolicyEngine
from xos_runtime.engines.sink import HookSink, OutcomeSink
from xos_runtime.engines.sync.engine import SyncEngine
from xos_runtime.hookspecs import Runtime, hookimpl
from xos_runtime.steps import EventStep
from xos_runtime.store import Lease

if TYPE_CHECKING:
    from xos_runtime.engines.events.bus import EventBus
    from xos_runtime.plugins import DiscoveredPlugins


class EngineHost(Runtime, Protocol):
    """What the built-in engines need of the host: the contract's `Runtime`, with the plugins
    and the event bus typed (they live in layers the contract cannot name)."""

    @property
    def plugins(self) -> DiscoveredPlugins: ...

    @property
    def event_bus(self) -> EventBus: ...


def _observed_leaves(runtime: EngineHost, names: Iterable[str]) -> set[str]:
    """The models named and all their sub-models."""
    out: set[str] = set()
    for name in names:
        if name in runtime.models:
            out.update(runtime.models.descendants(name))
    return out


def _event_step_names(plugins: DiscoveredPlugins) -> list[tuple[str, type[EventStep]]]:
    """`(name, class)` of each event step; the name (the entry point's, or the class name for
    a module of `event_steps_dir`) makes its consumer group, `module:Class` when two share it."""
    infos = plugins.table.of_kind("event_step")
    names = [info.name for info in infos]
    return [
        (info.name if names.count(info.name) == 1 else info.target, info.cls_or_module)
        for info in infos
    ]


def policy_engine(
    runtime: EngineHost, *, lease: Lease | None = None, outcomes: OutcomeSink | None = None
) -> PolicyEngine | None:
    """The policy engine over the discovered model policies (None without any); `plan`
    builds it the same way, without a lease or outcomes, to ask what it would do."""
    plugins, settings = runtime.plugins, runtime.settings
    if not plugins.model_policies:
        return None
    synced = _observed_leaves(
        runtime, [m for step in plugins.sync_steps for m in step.observed_model_names()]
    )
    return PolicyEngine(
        runtime.accessor,
        plugins.model_policies,
        settings.policies,
        poll_interval=settings.sync.poll_interval,
        synced_models=synced,
        lease=lease,
        outcomes=outcomes,
        clock=runtime.clock,
    )


def sync_engine(
    runtime: EngineHost, *, lease: Lease | None = None, outcomes: OutcomeSink | None = None
) -> SyncEngine | None:
    """The sync engine over the discovered sync steps (None without any); deletions of
    policed models wait for their policies. `plan` builds it the same way (see above)."""
    plugins = runtime.plugins
    if not plugins.sync_steps:
        return None
    policed = _observed_leaves(runtime, [str(p.model_name) for p in plugins.model_policies])
    return SyncEngine(
        runtime.accessor,
        plugins.sync_steps,
        runtime.graph,
        runtime.settings.sync,
        held_for_policies=policed,
        outcomes=outcomes,
        lease=lease,
        clock=runtime.clock,
    )


@hookimpl
def xos_runtime_engines(runtime: EngineHost) -> list[LoopEngine]:
    """The pull, event, policy and sync engines over the discovered plugins that need them."""
    engines: list[LoopEngine] = []
    plugins, settings = runtime.plugins, runtime.settings
    outcomes = HookSink(runtime.hook)
    lease = runtime.lease if runtime.shares_work else None
    if plugins.pull_steps:
        from xos_runtime.engines.pull import PullEngine

        engines.append(
            PullEngine(
                runtime.accessor,
                plugins.pull_steps,
                settings.pull,
                shared_by=lease.owner if lease is not None else None,
                outcomes=outcomes,
                clock=runtime.clock,
            )
        )
    event_steps = _event_step_names(plugins)
    if event_steps:
        from xos_runtime.engines.events.engine import EventEngine

        engines.append(
            EventEngine(
                runtime.accessor,
                event_steps,
                runtime.event_bus,
                group_prefix=settings.name,
                settings=settings.events,
                outcomes=outcomes,
                clock=runtime.clock,
            )
        )
    for engine in (
        policy_engine(runtime, lease=lease, outcomes=outcomes),
        sync_engine(runtime, lease=lease, outcomes=outcomes),
    ):
        if engine is not None:
            engines.append(engine)
    return engines
