"""The ``mediagraph`` command line (see ``mediagraph --help``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("mediagraph: the command line is not built yet")  # replaced by the CLI issue


if __name__ == "__main__":
    sys.exit(main())
