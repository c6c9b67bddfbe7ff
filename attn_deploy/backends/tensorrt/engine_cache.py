"""On-disk cache of serialized TensorRT engines and timing caches.

An engine is valid only for the model, the TensorRT version, the GPU, the precision, the
optimization profile, the plugin library and the build settings it was made with; the cache key
hashes all of them, so a change in any one builds a new engine. Files are written atomically
(temporary file, fsync, rename): a crash or a concurrent build never leaves a torn engine.
Location: ``$ATTN_DEPLOY_CACHE/engines`` (default ``~/.cache/attn_deploy/engines``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from attn_deploy.atomic_write import atomic_write_bytes, atomic_write_text


def default_cache_dir() -> Path:
    root = os.environ.get("ATTN_DEPLOY_CACHE") or Path.home() / ".cache" / "attn_deploy"
    return Path(root) / "engines"


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    model_sha256: str
    tensorrt: str
    gpu: str
    precision: str
    profile: str
    plugin_sha256: str
    settings: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")[:60]


class EngineCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def engine_path(self, stem: str, key: EngineKey) -> Path:
        return self.root / f"{_slug(stem)}.{key.precision}.{key.digest()[:20]}.engine"

    def timing_cache_path(self, tensorrt: str, gpu: str) -> Path:
        return self.root / f"timing.trt-{_slug(tensorrt)}.{_slug(gpu)}.cache"

    def load(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def store(self, path: Path, engine: bytes, key: EngineKey) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, engine)
        atomic_write_text(path.with_suffix(".json"),
                          json.dumps({**key.__dict__, "digest": key.digest()}, indent=1))
        return path

    def store_timing_cache(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
