"""The sync engine: `engine` (the engine and its dispatch of one phase over the worker pool)
over `dag` (the object DAG of a pass, built from actual links).

Its public names are exported by `xos_runtime.engines`; import them from there.
"""

__all__: list[str] = []
