"""xos-runtime-demo: an example plugin distribution for xos-runtime.

It contributes the `demo` models (Site, User, Slice, Instance), one sync step per model that
writes each object to a JSON file, a model policy for Site, and seed data. Everything is
registered through entry points (see `pyproject.toml`); nothing here is imported by the host
directly.
"""

__version__ = "0.1.0"
