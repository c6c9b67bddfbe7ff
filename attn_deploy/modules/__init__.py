"""Attention blocks, one file per block, and the registry that names them.

Block files register themselves on import; :func:`load_all` imports every module file of this
package once, so adding a file is all it takes to add a block.
"""
from __future__ import annotations

import importlib
import pkgutil

_LOADED = False
_NOT_BLOCKS = {"registry", "layers", "adaptive_pool", "arg_checks"}


def load_all() -> None:
    """Import every block file in this package (idempotent)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name not in _NOT_BLOCKS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
