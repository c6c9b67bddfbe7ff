"""Calibration data sources, and the errors bad data gets (each naming the input)."""
import numpy as np
import pytest

from attn_deploy.backends.base import TensorMeta
from attn_deploy.errors import AttnDeployError
from attn_deploy.quantize.calibration_data import (FeedReader, block_feeds, callable_feeds,
                                                   folder_feeds)

METAS = {"x": TensorMeta("x", np.dtype(np.float32), ("N", 4, "H", "W")),
         "mask": TensorMeta("mask", np.dtype(np.bool_), ("N", "H"))}
ONE = {"x": METAS["x"]}


def _x(n=2, h=5, w=6, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 4, h, w)).astype(dtype)


def test_folder_of_npz_in_name_order(tmp_path):
    for i in (1, 0):
        np.savez(tmp_path / f"s{i}.npz", x=_x(seed=i), mask=np.zeros((2, 5), bool))
    feeds = folder_feeds(tmp_path, METAS)
    assert len(feeds) == 2 and set(feeds[0]) == {"x", "mask"}
    np.testing.assert_array_equal(feeds[0]["x"], _x(seed=0))
    reader = FeedReader(feeds)
    assert [reader.get_next() is not None for _ in range(3)] == [True, True, False]


def test_folder_of_npy_for_one_input(tmp_path):
    np.save(tmp_path / "a.npy", _x(h=7))
    np.save(tmp_path / "b.npy", _x(h=9))  # symbolic dims may vary between samples
    assert [f["x"].shape[2] for f in folder_feeds(tmp_path, ONE)] == [7, 9]


@pytest.mark.parametrize("write,match", [
    (lambda d: np.savez(d / "s.npz", y=_x(), mask=np.zeros((2, 5), bool)), r"missing \['x'\]"),
    (lambda d: np.savez(d / "s.npz", x=_x(), mask=np.zeros((2, 5), bool), z=_x()),
     r"unexpected \['z'\]"),
    (lambda d: np.savez(d / "s.npz", x=_x(dtype=np.float64), mask=np.zeros((2, 5), bool)),
     r"'s.npz': input 'x': expected dtype float32.*got \(2, 4, 5, 6\) float64"),
    (lambda d: np.savez(d / "s.npz", x=np.zeros((2, 3, 5, 6), np.float32),
                        mask=np.zeros((2, 5), bool)), r"input 'x': expected shape .*axis 1"),
    (lambda d: np.savez(d / "s.npz", x=_x()[0], mask=np.zeros((2, 5), bool)),
     r"input 'x': expected rank 4"),
    (lambda d: np.savez(d / "s.npz", x=_x(), mask=np.zeros((3, 5), bool)),
     r"input 'mask': dim N is 3 but input 'x' has N = 2"),
    (lambda d: np.savez(d / "s.npz", x=_x() * np.nan, mask=np.zeros((2, 5), bool)),
     r"input 'x' has 240 NaN/Inf"),
    (lambda d: np.save(d / "s.npy", _x()), r"model has 2 inputs \['x', 'mask'\]"),
    (lambda d: (np.save(d / "a.npy", _x()), np.savez(d / "b.npz", x=_x())), "mixes"),
    (lambda d: (d / "bad.npz").write_bytes(b"not numpy"), "not a readable numpy file"),
    (lambda d: (d / "notes.txt").write_text("x"), r"no \.npz or \.npy files"),
])
def test_bad_folders_name_the_problem(tmp_path, write, match):
    write(tmp_path)
    with pytest.raises(AttnDeployError, match=match):
        folder_feeds(tmp_path, METAS)


def test_missing_folder(tmp_path):
    with pytest.raises(AttnDeployError, match="does not exist"):
        folder_feeds(tmp_path / "nope", METAS)


def test_callable_feeds_dicts_sequences_and_tensors(tmp_path, monkeypatch):
    (tmp_path / "calib_mod.py").write_text(
        "import numpy as np, torch\n"
        "def dicts():\n"
        "    for i in range(5):\n"
        "        yield {'x': torch.randn(1, 4, 3, 3)}\n"
        "def tuples():\n"
        "    return [(np.ones((1, 4, 2, 2), np.float32),)]\n"
        "def wrong_name():\n"
        "    return [{'image': np.ones((1, 4, 2, 2), np.float32)}]\n"
        "def nothing():\n"
        "    return None\n"
        "def empty():\n"
        "    return []\n"
        "def boom():\n"
        "    raise RuntimeError('no data here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert len(callable_feeds("calib_mod:dicts", ONE, limit=3)) == 3
    assert callable_feeds("calib_mod:tuples", ONE)[0]["x"].dtype == np.float32
    with pytest.raises(AttnDeployError, match=r"missing \['x'\], unexpected \['image'\]"):
        callable_feeds("calib_mod:wrong_name", ONE)
    with pytest.raises(AttnDeployError, match="returned NoneType"):
        callable_feeds("calib_mod:nothing", ONE)
    with pytest.raises(AttnDeployError, match="no samples"):
        callable_feeds("calib_mod:empty", ONE)
    with pytest.raises(AttnDeployError, match="raised RuntimeError: no data here"):
        callable_feeds("calib_mod:boom", ONE)
    with pytest.raises(AttnDeployError, match="cannot import module"):
        callable_feeds("no_such_calib_mod:fn", ONE)


def test_block_feeds_are_seeded_and_distinct():
    a, b = block_feeds("se", {"channels": 8}, 2), block_feeds("se", {"channels": 8}, 2)
    np.testing.assert_array_equal(a[1]["x"], b[1]["x"])
    assert not np.array_equal(a[0]["x"], a[1]["x"])
    assert a[0]["x"].shape[1] == 8
    with pytest.raises(AttnDeployError, match="at least 1"):
        block_feeds("se", count=0)
