"""``python -m tinyedge.service ARGS`` is ``tinyedge serve ARGS``."""

import sys

from .server import main

sys.exit(main())
