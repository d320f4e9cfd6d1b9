"""XOS import path kept for service synchronizers (xos-runtime-xos-compat)."""
