"""The ONNX reference evaluator (``onnx.reference``): slow, pure numpy, an independent check.

It runs models with attn_deploy's custom nodes through their model-local functions, so it
proves the function bodies, not our kernels. A few of its ops are replaced where onnx's own are
wrong for older opsets or far too slow (``reference_ops.py``; still numpy, still independent of
PyTorch and ONNX Runtime).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from attn_deploy.backends.base import Runner, TensorMeta, metadata_from_proto
from attn_deploy.errors import AttnDeployError


class OnnxReferenceRunner(Runner):
    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.name = "onnx-reference"
        self.evaluator = None
        self._metas = None

    def _activate(self) -> None:
        from onnx.reference import ReferenceEvaluator

        from attn_deploy.backends.reference_ops import REFERENCE_OPS
        proto = onnx.load(str(self.path))
        self._metas = metadata_from_proto(proto)
        self._outputs = [o.name for o in proto.graph.output]
        try:
            self.evaluator = ReferenceEvaluator(proto, new_ops=REFERENCE_OPS)
        except Exception as exc:  # an op or attribute the reference implementation lacks
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AttnDeployError(f"{self.path}: the ONNX reference evaluator cannot load it: "
                                  f"{first[:300]}") from None

    def _deactivate(self) -> None:
        self.evaluator = None

    def input_metadata(self) -> dict[str, TensorMeta]:
        if self._metas is None:
            self._metas = metadata_from_proto(onnx.load(str(self.path), load_external_data=False))
        return self._metas

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.evaluator.run(None, feed)
        return {n: np.asarray(o) for n, o in zip(self._outputs, outs)}
