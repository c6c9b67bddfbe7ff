"""The TensorRT runner: builds (or loads from the cache) an engine for an ONNX file on activate,
then runs it on named inputs with device buffers on one CUDA stream of the chosen device.

    with TensorRTRunner("cbam.onnx", precision="fp16", device=0) as r:
        outputs = r.infer({"x": x})          # numpy in, numpy out
        ms = r.time_infer({"x": x})          # engine time on the stream, CUDA events

Device memory, copies, the stream and the events go through the CUDA runtime library
(``cuda_runtime``), not torch: a deployment that only runs engines needs no PyTorch. Inputs and
outputs keep the dtypes the ONNX file declares: when TensorRT 11 runs a float16 copy of a float32
model (strong typing), inputs are cast before the upload and outputs after the download.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from attn_deploy.backends.base import Runner, TensorMeta, metadata_from_proto
from attn_deploy.backends.tensorrt.runtime_env import import_tensorrt, tensorrt_availability
from attn_deploy.errors import AttnDeployError


class TensorRTRunner(Runner):
    def __init__(self, path: str | Path, *, precision: str = "fp32", min_shapes=None,
                 opt_shapes=None, max_shapes=None, cache_dir: str | Path | None = None,
                 plugin_library: str | Path | None = None, workspace_mb: int | None = None,
                 device: int = 0):
        super().__init__()
        self.path, self.precision, self.device_index = Path(path), precision, device
        self.name = "tensorrt"
        self._build_options = dict(precision=precision, min_shapes=min_shapes,
                                   opt_shapes=opt_shapes, max_shapes=max_shapes,
                                   cache_dir=cache_dir, plugin_library=plugin_library,
                                   workspace_mb=workspace_mb, device=device)
        self.build = None
        self.engine = self.context = self.stream = None
        self._cuda = None
        self.device_memory_mb: float | None = None
        self._metas: dict[str, TensorMeta] | None = None
        self._outputs: list[str] = []

    @classmethod
    def runtime_availability(cls) -> tuple[bool, str]:
        return tensorrt_availability()

    def availability(self) -> tuple[bool, str]:
        return self.runtime_availability()

    def input_metadata(self) -> dict[str, TensorMeta]:
        if self._metas is None:
            proto = onnx.load(str(self.path), load_external_data=False)
            self._metas = metadata_from_proto(proto)
            self._outputs = [o.name for o in proto.graph.output]
            self._output_dtypes = {o.name: onnx.helper.tensor_dtype_to_np_dtype(
                o.type.tensor_type.elem_type) for o in proto.graph.output}
        return self._metas

    def _activate(self) -> None:
        from attn_deploy.backends.tensorrt.cuda_runtime import cuda_runtime
        from attn_deploy.backends.tensorrt.engine_builder import build_engine, collecting_logger

        trt = import_tensorrt()
        self.input_metadata()
        self._cuda = cuda_runtime()
        self._cuda.set_device(self.device_index)
        self.build = build_engine(self.path, **self._build_options)
        self._logger = collecting_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.build.path.read_bytes())
        if self.engine is None:
            raise AttnDeployError(f"TensorRT could not load engine {self.build.path}: "
                                  + "; ".join(self._logger.errors or ["no details"]))
        self.context = self.engine.create_execution_context()
        self.stream = self._cuda.create_stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._engine_dtypes = {n: _numpy_dtype(trt, self.engine.get_tensor_dtype(n))
                               for n in names}
        self._engine_inputs = [n for n in names
                               if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._buffers: dict[str, int] = {}
        size = getattr(self.engine, "device_memory_size_v2", None)
        self.device_memory_mb = None if size is None else size / 2**20

    def _deactivate(self) -> None:
        if self._cuda is None:
            return
        self._free_buffers()
        if self.stream is not None:
            self._cuda.destroy_stream(self.stream)
        self.context = self.engine = self._runtime = self.stream = None

    def _free_buffers(self) -> None:
        for ptr in getattr(self, "_buffers", {}).values():
            self._cuda.free(ptr)
        self._buffers = {}

    def _bind(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Upload the inputs, set shapes and addresses; returns empty host arrays for the
        outputs (filled by ``_download``). The device buffers live until the next call."""
        missing = set(self._engine_inputs) - set(feed)
        if missing:
            raise AttnDeployError(f"tensorrt: missing inputs {sorted(missing)}")
        self._free_buffers()
        for name in self._engine_inputs:
            host = np.ascontiguousarray(np.asarray(feed[name]).astype(
                self._engine_dtypes[name], copy=False))
            if not self.context.set_input_shape(name, tuple(host.shape)):
                raise AttnDeployError(
                    f"tensorrt: input {name!r} shape {tuple(host.shape)} is outside the "
                    f"engine's profile ({self.build.profile.get(name)})")
            ptr = self._buffers[name] = self._cuda.malloc(host.nbytes)
            self._cuda.memcpy_htod(ptr, host, self.stream)
            self.context.set_tensor_address(name, ptr)
        outputs = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise AttnDeployError(f"tensorrt: output {name!r} has unresolved shape {shape}")
            outputs[name] = np.empty(shape, dtype=self._engine_dtypes[name])
            ptr = self._buffers[name] = self._cuda.malloc(outputs[name].nbytes)
            self.context.set_tensor_address(name, ptr)
        return outputs

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise AttnDeployError("tensorrt: execute_async_v3 failed: "
                                  + "; ".join(self._logger.errors[-3:] or ["no details"]))

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._cuda.set_device(self.device_index)  # the current device is per thread
        outputs = self._bind(feed)
        self._execute()
        for name, host in outputs.items():
            self._cuda.memcpy_dtoh(host, self._buffers[name], self.stream)
        self._cuda.synchronize(self.stream)
        return {name: host.astype(self._output_dtypes[name], copy=False)
                for name, host in outputs.items()}

    def peak_memory_mb(self) -> tuple[float | None, str]:
        return self.device_memory_mb, "device memory" if self.device_memory_mb is not None else ""

    def time_infer(self, feed: dict[str, np.ndarray]) -> float:
        """Milliseconds the engine takes on its stream (CUDA events), inputs already on the
        device: the engine's time, without host-device copies."""
        self._cuda.set_device(self.device_index)
        self._bind({k: np.asarray(v) for k, v in feed.items()})
        self._cuda.synchronize(self.stream)
        return self._cuda.elapsed_ms(self.stream, self._execute)


def _numpy_dtype(trt, dtype) -> np.dtype:
    table = {trt.float32: np.float32, trt.float16: np.float16, trt.int32: np.int32,
             trt.int64: np.int64, trt.bool: np.bool_, trt.int8: np.int8, trt.uint8: np.uint8}
    if dtype not in table:
        raise AttnDeployError(f"tensorrt: engine tensor type {dtype} has no numpy equivalent "
                              "(bfloat16 and fp8 I/O are not supported by this runner)")
    return np.dtype(table[dtype])
