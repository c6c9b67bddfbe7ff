"""The TensorRT runner: builds (or loads from the cache) an engine for an ONNX file on activate,
then runs it on named inputs with torch CUDA tensors as device buffers and one CUDA stream.

    with TensorRTRunner("cbam.onnx", precision="fp16") as r:
        outputs = r.infer({"x": x})          # numpy in, numpy out
        ms = r.time_infer({"x": x})          # engine time on the stream, CUDA events

Inputs and outputs keep the dtypes the ONNX file declares: when TensorRT 11 runs a float16 copy
of a float32 model (strong typing), inputs are cast on the device before and outputs after.
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
        # Not named `device`: the harness times runners with a torch `device` by their own
        # events and memory; this one reports engine time (time_infer) and engine memory.
        self._device = None
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
        import torch

        from attn_deploy.backends.tensorrt.engine_builder import build_engine, collecting_logger

        trt = import_tensorrt()
        self.input_metadata()
        self.build = build_engine(self.path, **self._build_options)
        self._logger = collecting_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.build.path.read_bytes())
        if self.engine is None:
            raise AttnDeployError(f"TensorRT could not load engine {self.build.path}: "
                                  + "; ".join(self._logger.errors or ["no details"]))
        self.context = self.engine.create_execution_context()
        self._device = torch.device("cuda", self.device_index)
        self.stream = torch.cuda.Stream(self._device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._engine_dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self._engine_inputs = [n for n in names
                               if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        size = getattr(self.engine, "device_memory_size_v2", None)
        self.device_memory_mb = None if size is None else size / 2**20

    def _deactivate(self) -> None:
        self.context = self.engine = self._runtime = self.stream = None
        self._buffers = {}

    def _bind(self, feed: dict[str, np.ndarray]) -> dict:
        """Upload the inputs, set shapes and addresses; returns the output tensors."""
        import torch

        missing = set(self._engine_inputs) - set(feed)
        if missing:
            raise AttnDeployError(f"tensorrt: missing inputs {sorted(missing)}")
        buffers = {}
        with torch.cuda.stream(self.stream):
            for name in self._engine_inputs:
                t = torch.from_numpy(np.ascontiguousarray(feed[name])).to(self._device)
                t = t.to(self._engine_dtypes[name]).contiguous()
                if not self.context.set_input_shape(name, tuple(t.shape)):
                    raise AttnDeployError(
                        f"tensorrt: input {name!r} shape {tuple(t.shape)} is outside the "
                        f"engine's profile ({self.build.profile.get(name)})")
                self.context.set_tensor_address(name, t.data_ptr())
                buffers[name] = t
            outputs = {}
            for name in self._outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._engine_dtypes[name], device=self._device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
        self._buffers = {**buffers, **outputs}  # alive until the next call
        return outputs

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise AttnDeployError("tensorrt: execute_async_v3 failed: "
                                  + "; ".join(self._logger.errors[-3:] or ["no details"]))

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._bind(feed)
        self._execute()
        self.stream.synchronize()
        result = {}
        for name, t in outputs.items():
            want = self._output_dtypes[name]
            result[name] = t.cpu().numpy().astype(want, copy=False)
        return result

    def time_infer(self, feed: dict[str, np.ndarray]) -> float:
        """Milliseconds the engine takes on its stream (CUDA events), inputs already on the
        device: the engine's time, without host-device copies."""
        import torch

        self._bind({k: np.asarray(v) for k, v in feed.items()})
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(self.stream)
        self._execute()
        end.record(self.stream)
        end.synchronize()
        return float(start.elapsed_time(end))


def _torch_dtype(trt, dtype):
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.int64: torch.int64, trt.bool: torch.bool, trt.int8: torch.int8,
             trt.uint8: torch.uint8, getattr(trt, "bfloat16", None): torch.bfloat16}
    if dtype not in table:
        raise AttnDeployError(f"tensorrt: engine tensor type {dtype} has no torch equivalent")
    return table[dtype]
