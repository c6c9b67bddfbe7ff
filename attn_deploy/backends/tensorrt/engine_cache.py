"""On-disk cache of serialized TensorRT engines and timing caches.

An engine is valid only for the model, the TensorRT version, the GPU, the precision, the
optimization profile, the plugin library and the build settings it was made with; the cache key
hashes all of them, so a change in any one builds a new engine. Files are written atomically
(temporary file, fsync, rename): a crash or a concurrent build never leaves a torn engine. Every
read is verified: the entry's ``.json`` key file must hold the same key and the engine file's
SHA-256, so a truncated engine, another model's engine copied over it, or a missing key file is
reported and rebuilt, never returned as cached.
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

    def timing_cache_path(self, tensorrt: str, gpu: str, plugin_sha256: str = "") -> Path:
        plugins = f".plugins-{plugin_sha256[:16]}" if plugin_sha256 else ""
        return self.root / f"timing.trt-{_slug(tensorrt)}.{_slug(gpu)}{plugins}.cache"

    def load(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def verified_engine(self, path: Path, key: EngineKey) -> tuple[bytes | None, str]:
        """(engine bytes, "") for a valid cached entry; (None, why) when there is none or it
        does not verify (the caller rebuilds and may say why)."""
        engine = self.load(path)
        if engine is None:
            return None, ""
        try:
            record = json.loads(path.with_suffix(".json").read_text())
        except FileNotFoundError:
            return None, f"cached engine {path.name} has no key file"
        except (OSError, ValueError) as exc:
            return None, f"cached engine {path.name} has an unreadable key file ({exc})"
        if not isinstance(record, dict) or record.get("digest") != key.digest() or \
                any(record.get(k) != v for k, v in key.__dict__.items()):
            return None, f"cached engine {path.name} was built for another key"
        if record.get("engine_sha256") != hashlib.sha256(engine).hexdigest():
            return None, (f"cached engine {path.name} does not match its recorded hash "
                          "(truncated or replaced)")
        return engine, ""

    def store(self, path: Path, engine: bytes, key: EngineKey) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        # The key file goes first: an engine is only ever returned with a key that vouches for it.
        atomic_write_text(path.with_suffix(".json"), json.dumps(
            {**key.__dict__, "digest": key.digest(),
             "engine_sha256": hashlib.sha256(engine).hexdigest()}, indent=1))
        atomic_write_bytes(path, engine)
        return path

    def store_timing_cache(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
