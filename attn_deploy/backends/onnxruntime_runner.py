"""ONNX Runtime runner: CPU, and the CUDA and TensorRT execution providers when installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attn_deploy.backends.base import Runner, TensorMeta
from attn_deploy.errors import AttnDeployError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
}


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with one execution provider (falling back to CPU for unsupported
    nodes, as ONNX Runtime does). ``threads`` sets intra-op threads (0 = ORT's default);
    ``spinning=False`` stops idle ORT threads from spinning, which would steal the cores of
    runtimes timed in between (benchmarks interleave them)."""

    def __init__(self, path: str | Path, provider: str = "cpu", threads: int = 0,
                 provider_options: dict | None = None, spinning: bool = True):
        super().__init__()
        self.path, self.provider, self.threads = Path(path), provider, threads
        self.spinning = spinning
        self.provider_options = provider_options or {}
        self.name = f"ort-{provider}"
        self.session = None

    def availability(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return False, f"onnxruntime not installed ({exc})"
        want = PROVIDERS.get(self.provider)
        if want is None:
            return False, f"unknown provider {self.provider!r}; valid: {list(PROVIDERS)}"
        if want not in ort.get_available_providers():
            return False, (f"{want} not in this onnxruntime build "
                           f"(available: {ort.get_available_providers()})")
        return True, ""

    def _activate(self) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        if not self.spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = [(PROVIDERS[self.provider], self.provider_options)]
        if self.provider != "cpu":
            providers.append(("CPUExecutionProvider", {}))
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:  # ORT's own Fail / InvalidGraph / NotImplemented errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AttnDeployError(f"{self.path}: ONNX Runtime cannot load it: "
                                  f"{first[:300]}") from None

    def _deactivate(self) -> None:
        self.session = None

    def input_metadata(self) -> dict[str, TensorMeta]:
        if self.session is None:
            import onnx
            from attn_deploy.backends.base import metadata_from_proto
            return metadata_from_proto(onnx.load(str(self.path), load_external_data=False))
        return {i.name: TensorMeta(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)),
                                   tuple(i.shape)) for i in self.session.get_inputs()}

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))
