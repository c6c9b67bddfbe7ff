"""The runner interface every runtime sits behind (after Polygraphy's runners).

A runner is activated once (session creation, engine deserialisation: the cold start, timed
apart), then ``infer`` takes named numpy arrays or torch tensors and returns named numpy arrays.
Runners are context managers. A runner checks its feed against the inputs it declares and names
the input, the expected and the actual shape or dtype when they disagree.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from attn_deploy.errors import AttnDeployError


@dataclass(frozen=True)
class TensorMeta:
    """An input as a runner declares it: dtype and a shape of ints and symbols (or None)."""

    name: str
    dtype: np.dtype
    shape: tuple  # int | str | None per axis

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"({dims}) {np.dtype(self.dtype).name}"


def to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        return value.detach().cpu().numpy()
    return np.asarray(value)


def metadata_from_proto(proto: "onnx.ModelProto") -> dict[str, TensorMeta]:
    """Graph inputs (initializers excluded) as TensorMeta, for runners of ONNX files."""
    import onnx  # here, so the torch runner's base does not load onnx

    inits = {i.name for i in proto.graph.initializer}
    metas = {}
    for v in proto.graph.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        shape = tuple(d.dim_param if d.HasField("dim_param") else
                      (d.dim_value if d.HasField("dim_value") else None) for d in t.shape.dim)
        metas[v.name] = TensorMeta(v.name, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type),
                                   shape)
    return metas


def check_feed(feed: Mapping[str, np.ndarray], metas: Mapping[str, TensorMeta],
               runner: str) -> None:
    """Raise AttnDeployError naming the first input whose name, rank, size or dtype is wrong,
    or whose symbolic dims disagree with another input's."""
    missing = [n for n in metas if n not in feed]
    extra = [n for n in feed if n not in metas]
    if missing or extra:
        raise AttnDeployError(f"{runner}: inputs must be {list(metas)}; missing {missing}, "
                              f"unexpected {extra}")
    bound: dict[str, tuple[int, str]] = {}
    for name, meta in metas.items():
        arr = feed[name]
        seen = f"{tuple(arr.shape)} {arr.dtype.name}"
        if arr.ndim != len(meta.shape):
            raise AttnDeployError(f"{runner}: input {name!r}: expected rank {len(meta.shape)} "
                                  f"{meta.describe()}, got rank {arr.ndim} {seen}")
        if arr.dtype != meta.dtype:
            raise AttnDeployError(f"{runner}: input {name!r}: expected dtype "
                                  f"{np.dtype(meta.dtype).name} {meta.describe()}, got {seen}")
        for axis, (want, got) in enumerate(zip(meta.shape, arr.shape)):
            if isinstance(want, int) and want != got:
                raise AttnDeployError(f"{runner}: input {name!r}: expected shape "
                                      f"{meta.describe()}, got {seen} (axis {axis})")
            if isinstance(want, str) and want:
                if want in bound and bound[want][0] != got:
                    other = bound[want][1]
                    raise AttnDeployError(
                        f"{runner}: input {name!r}: dim {want} is {got} but input {other!r} "
                        f"has {want} = {bound[want][0]}")
                bound.setdefault(want, (got, name))


class Runner(ABC):
    """activate -> infer* -> deactivate; also a context manager."""

    name: str = "runner"

    def __init__(self) -> None:
        self.is_active = False
        self.activate_seconds: float | None = None

    def availability(self) -> tuple[bool, str]:
        """(available, reason): whether this runtime can run on this machine."""
        return True, ""

    def activate(self) -> "Runner":
        if self.is_active:
            return self
        ok, why = self.availability()
        if not ok:
            from attn_deploy.errors import RuntimeUnavailableError
            raise RuntimeUnavailableError(f"{self.name} is unavailable: {why}")
        start = time.perf_counter()
        self._activate()
        self.activate_seconds = time.perf_counter() - start
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def time_infer(self, feed: Mapping[str, np.ndarray]) -> float:
        """Milliseconds of one inference as the benchmark counts them: the host's clock around
        ``infer`` here; runners on a GPU override this with the device's own events."""
        start = time.perf_counter()
        self.infer(feed, check=False)
        return (time.perf_counter() - start) * 1e3

    def peak_memory_mb(self) -> tuple[float | None, str]:
        """(peak memory in MiB, what was measured) after a benchmark; (None, "") for a runner
        with no measure of its own (the benchmark then counts the process's RSS growth)."""
        return None, ""

    def infer(self, feed: Mapping[str, object], check: bool = True) -> dict[str, np.ndarray]:
        """Run once on named inputs; returns {output name: numpy array}."""
        if not self.is_active:
            raise AttnDeployError(f"{self.name}: activate() the runner before infer()")
        arrays = {k: to_numpy(v) for k, v in feed.items()}
        if check:
            check_feed(arrays, self.input_metadata(), self.name)
        return self._infer(arrays)

    @abstractmethod
    def input_metadata(self) -> dict[str, TensorMeta]: ...

    @abstractmethod
    def _activate(self) -> None: ...

    def _deactivate(self) -> None:
        pass

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
