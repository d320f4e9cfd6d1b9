"""The event engine: `engine` over `delivery` (what becomes of each polled message) over
`connect` (the bus the config names) over the buses, `memory` (`MemoryBus`, embedded) and
`kafka` (`KafkaBus`), over `bus` (the `EventBus` and `Consumer` protocols).

Its public names are exported by `xos_runtime.engines`; import them from there.
"""

__all__: list[str] = []
