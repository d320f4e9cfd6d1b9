"""The discovery tests use the shared plugin-distribution fixtures of `tests/conftest.py`."""
