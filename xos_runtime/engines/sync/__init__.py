"""The sync engine: the object DAG, the engine and its dispatch over the pool."""
