"""``python -m mediagraph``: the ``mediagraph`` command line."""

from ._cli import command

command()
