"""`xosapi.convenience`: the core convenience wrappers (xos-runtime-xos-compat)."""
