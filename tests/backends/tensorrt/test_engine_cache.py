"""Engine cache keys and files (no TensorRT needed)."""
import json
from dataclasses import replace

from attn_deploy.backends.tensorrt.engine_cache import EngineCache, EngineKey, default_cache_dir


def _key(**changes):
    key = EngineKey(model_sha256="ab" * 32, tensorrt="10.3.0", gpu="Orin sm_87", precision="fp16",
                    profile="x: min 1x8 opt 2x8 max 4x8", plugin_sha256="cd" * 32,
                    settings="workspace=4096MB")
    return replace(key, **changes)


def test_every_component_changes_the_key():
    base = _key().digest()
    for field, value in [("model_sha256", "00" * 32), ("tensorrt", "11.1.0"), ("gpu", "H100 sm_90"),
                         ("precision", "fp32"), ("profile", "x: min 1x8 opt 2x8 max 8x8"),
                         ("plugin_sha256", ""), ("settings", "workspace=1024MB")]:
        assert _key(**{field: value}).digest() != base, field
    assert _key().digest() == base  # deterministic


def test_store_and_load(tmp_path):
    cache = EngineCache(tmp_path / "c")
    path = cache.engine_path("my model", _key())
    assert path.parent == tmp_path / "c" and path.name.startswith("my-model.fp16.")
    assert cache.load(path) is None
    cache.store(path, b"engine-bytes", _key())
    assert cache.load(path) == b"engine-bytes"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["digest"] == _key().digest() and meta["gpu"] == "Orin sm_87"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic writes
    timing = cache.timing_cache_path("10.3.0", "Orin sm_87")
    cache.store_timing_cache(timing, b"t")
    assert timing.read_bytes() == b"t" and "10.3.0" in timing.name


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTN_DEPLOY_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "engines"
