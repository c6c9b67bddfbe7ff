"""Where the built plugin library is, and loading it into TensorRT.

``libattn_deploy_plugins.so`` is built by CMake from ``plugins/`` (see plugins/README.md). It is
looked for, in order: ``$ATTN_DEPLOY_PLUGINS_LIB``; ``attn_deploy/backends/tensorrt/lib/``
(where a wheel or docker image puts it); the source tree's ``build/plugins/lib/``; the system
library path. A symlink (to a library file kept elsewhere) is resolved to the
real file, whose hash goes into the engine and timing cache keys.

The library is loaded through TensorRT's own loader (``IPluginRegistry.load_library``, which
calls its ``getCreators``); it registers nothing by merely being loaded. Its companion
``libattn_deploy_plugins_static.so``, which registers at load time, is for tools that only dlopen
a library (``trtexec --staticPlugins``, Polygraphy ``--plugins``); ``plugins-path --static``
prints it.
"""
from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import OPS, PLUGIN_NAMESPACE, PLUGIN_VERSION

LIBRARY_NAME = "libattn_deploy_plugins.so"
STATIC_LIBRARY_NAME = "libattn_deploy_plugins_static.so"
ENV_VAR = "ATTN_DEPLOY_PLUGINS_LIB"

BUILD_HINT = ("build it with: cmake -S plugins -B build/plugins "
              "-DTensorRT_INCLUDE_DIR=<folder with NvInferRuntime.h> && "
              "cmake --build build/plugins -j  (or set $" + ENV_VAR + " to the .so)")

_loaded: dict[str, object] = {}


def resolve_library(path: str | Path) -> Path:
    """``path`` as the real file it names (symlinks resolved); AttnDeployError if it is none."""
    path = Path(path)
    if not path.is_file():
        raise AttnDeployError(f"plugin library: {str(path)!r} is not a file; {BUILD_HINT}")
    return path.resolve()


def static_companion(library: Path) -> Path | None:
    """The load-time registering companion that sits beside ``library``, if it was built."""
    companion = Path(library).parent / STATIC_LIBRARY_NAME
    return companion if companion.is_file() else None


def candidate_paths() -> list[Path]:
    """Files the library is looked for at, in order (the system path is searched after)."""
    package = Path(__file__).resolve().parent
    paths = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    return paths + [package / "lib" / LIBRARY_NAME,
                    package.parents[2] / "build" / "plugins" / "lib" / LIBRARY_NAME]


def plugin_library_path(required: bool = True) -> Path | None:
    """The plugin library: a file path, or a library name the dynamic loader resolves from the
    system path. None (or AttnDeployError when ``required``) if it is not built."""
    env = os.environ.get(ENV_VAR)
    if env and not Path(env).is_file():
        raise AttnDeployError(f"${ENV_VAR}={env!r} is not a file; {BUILD_HINT}")
    for path in candidate_paths():
        if path.is_file():
            return path.resolve()
    system = ctypes.util.find_library("attn_deploy_plugins")
    if system:
        return Path(system)
    if required:
        tried = ", ".join(str(p) for p in candidate_paths())
        raise AttnDeployError(f"{LIBRARY_NAME} not found (looked at {tried} and the system "
                              f"library path); {BUILD_HINT}")
    return None


def load_plugin_library(path: str | Path | None = None, trt=None) -> Path:
    """Load the library into TensorRT's registry through TensorRT's loader (``load_library``
    calls its ``getCreators``), once per process, unless its creators are registered already
    (by the static companion, say). Without ``trt`` nothing is loaded: the path is returned."""
    path = Path(path) if path is not None else plugin_library_path()
    key = str(path)
    if trt is None or key in _loaded or all(find_creator(trt, name) is not None for name in OPS):
        return path
    handle = trt.get_plugin_registry().load_library(key)
    if handle is None:
        raise AttnDeployError(
            f"TensorRT could not load plugin library {key!r} (see TensorRT's log above; a "
            "library built for another TensorRT major version offers no plugins)")
    _loaded[key] = handle
    return path


def find_creator(trt, name: str, version: str = PLUGIN_VERSION,
                 namespace: str = PLUGIN_NAMESPACE):
    """The registered creator for a plugin, or None. Scans the registry's creator list (the
    lookup by name logs an error in TensorRT when the plugin is absent)."""
    registry = trt.get_plugin_registry()
    creators = getattr(registry, "all_creators", None)
    if creators is None:  # TensorRT < 10
        creators = registry.plugin_creator_list
    for c in creators:
        if (c.name, c.plugin_version, c.plugin_namespace) == (name, version, namespace):
            return c
    return None


def require_plugins(trt, ops: list[tuple[str, str, str]], library: Path | None) -> None:
    """Raise AttnDeployError naming every (op, version, namespace) TensorRT cannot find."""
    missing = [op for op in ops if find_creator(trt, *op) is None]
    if missing:
        names = ", ".join(f"{n} (version {v}, namespace {ns!r})" for n, v, ns in missing)
        where = f"after loading {library}" if library else "and no plugin library was loaded"
        raise AttnDeployError(f"TensorRT plugin(s) not found: {names}, {where}. "
                              f"attn_deploy's library provides {', '.join(OPS)} in "
                              f"namespace {PLUGIN_NAMESPACE!r}; {BUILD_HINT}")
