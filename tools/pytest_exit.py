"""pytest, then the process ends with ``os._exit`` and pytest's status, not through interpreter finalization.

The suite loads livekit's FFI in this process (the apm processor); its threads post log records into Python,
and one that lands while the interpreter finalizes aborts the process after every test passed (see
``mediagraph._cli.command``, which ends the ``mediagraph`` command the same way).
"""

import os
import sys

import pytest

# Guarded: a test that starts processes with multiprocessing's "spawn" (the bench's W3 over P processes) has
# each child import this file again as its main module; unguarded, every child ran the whole suite again.
if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # as `python -m pytest` does: the repository's own packages (bench) import
    status = int(pytest.main(sys.argv[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
