"""A pickle module for ``torch.load(..., pickle_module=restricted_pickle)`` that never runs code
from the file: classes it does not trust are replaced by inert placeholders.

Training checkpoints carry more than tensors: mmengine stores a ``message_hub`` of
``mmengine.logging.history_buffer.HistoryBuffer`` objects (numpy arrays inside), Lightning its
``hyper_parameters`` as an ``AttributeDict``. ``torch.load(weights_only=True)`` refuses such
files, and the usual way round it (``weights_only=False``) lets the pickle call any function
(``os.system`` through ``__reduce__``). Here the unpickler of ``torch.load`` is a subclass of
``pickle.Unpickler`` whose ``find_class`` answers with:

- the object itself for exactly the globals torch's own weights-only unpickler allows (tensor and
  parameter rebuild functions, dtypes, ``OrderedDict``, ``torch.Size``, ...), so tensors and
  their storages load as ``torch.load`` always loads them;
- for every other global, a placeholder class (one per ``module.name``) that records the
  arguments and state the pickle hands it and does nothing else. The original class or function
  is never imported, so a pickled ``os.system`` call becomes a placeholder holding its argument.

Storages are read by torch's own ``persistent_load`` (``torch.load`` wraps this module's
``Unpickler``), so zip checkpoints, legacy checkpoints and ``map_location`` behave as usual.
TorchScript archives are refused by the caller (``torch.load`` would hand them to
``torch.jit.load``).
"""
from __future__ import annotations

import _compat_pickle
import pickle
from types import SimpleNamespace
from typing import Any

class Placeholder:
    """Stands for an object of a class the loader does not trust: what the pickle passed to
    construct it (``args``, ``kwargs``), its ``state`` and any list/dict ``items``; no behaviour.
    ``qualname`` is the ``module.name`` the pickle asked for."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.__dict__.update(args=args, kwargs=kwargs, state=None, items=[])
        return self

    def __init__(self, *args, **kwargs):  # pickle's REDUCE calls cls(*args): already recorded
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def append(self, item: Any) -> None:     # pickle's APPEND(S) on a list subclass
        self.__dict__["items"].append(item)

    def extend(self, items) -> None:
        self.__dict__["items"].extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) on a dict subclass
        self.__dict__["items"].append((key, value))

    def __repr__(self) -> str:
        return f"<placeholder for {self.qualname}>"


def _allowed_globals() -> dict[str, Any]:
    """``"module.name" -> object``: torch's weights-only allowlist, the one set of globals that
    ``torch.load(weights_only=True)`` itself trusts."""
    from torch._weights_only_unpickler import _get_allowed_globals

    return _get_allowed_globals()


class Unpickler(pickle.Unpickler):
    """``find_class`` returns allowlisted globals, and placeholders for everything else."""

    # module.name of each global replaced by a placeholder; a per-load list (see pickle_module)
    replaced: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._allowed = _allowed_globals()
        self._made: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 pickles (torch.save's default) name Python 2 modules (__builtin__,
        # copy_reg); map them as pickle's own find_class does before any lookup
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        qualname = f"{module}.{name}"
        if qualname in self._allowed:
            return self._allowed[qualname]
        if qualname not in self._made:
            self._made[qualname] = type(name, (Placeholder,), {"qualname": qualname,
                                                               "__module__": __name__})
            self.replaced.append(qualname)
        return self._made[qualname]


def pickle_module() -> SimpleNamespace:
    """A fresh pickle module for one ``torch.load(..., weights_only=False, pickle_module=...)``
    call; afterwards its ``replaced`` lists the globals that became placeholders.

    torch.load builds its unpickler as a subclass of ``pickle_module.Unpickler`` (to read
    storages), so the record lives on a per-call subclass rather than on an instance."""
    replaced: list[str] = []
    unpickler = type("Unpickler", (Unpickler,), {"replaced": replaced})

    def load(file, **kwargs) -> Any:  # torch's legacy (pre-zip) format calls pickle_module.load
        return unpickler(file, **kwargs).load()

    return SimpleNamespace(__name__=__name__, Unpickler=unpickler, load=load,
                           UnpicklingError=pickle.UnpicklingError, replaced=replaced)
