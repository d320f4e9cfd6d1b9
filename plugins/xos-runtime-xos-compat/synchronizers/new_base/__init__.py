"""Aliases of `xossynchronizer` under the pre-4.0 paths (xos-runtime-xos-compat)."""
