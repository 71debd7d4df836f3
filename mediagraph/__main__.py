"""``python -m mediagraph``: the ``mediagraph`` command line."""

import sys

from ._cli import main

sys.exit(main())
