"""mediagraph's node library. Importing it registers every node type defined in its modules.

A new node type is one module here, decorated with ``mediagraph.node_type``; nothing else is edited.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
