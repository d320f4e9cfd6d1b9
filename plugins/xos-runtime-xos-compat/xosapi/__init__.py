"""`xosapi`: the ORM helpers XOS services import (xos-runtime-xos-compat)."""
