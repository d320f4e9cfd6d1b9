"""`python -m xos_runtime` runs the command line."""

import sys

from xos_runtime.cli.main import main

sys.exit(main())
