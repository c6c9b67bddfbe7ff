"""The TensorRT runner's control flow without TensorRT, a GPU or torch: a stand-in engine
(y = 2 * x, computed from the stand-in device memory) and a stand-in CUDA runtime. Checks device
selection, shapes, the float16 engine I/O casts, buffer lifetime and timing. Real engines run in
test_tensorrt_engine.py where TensorRT and a GPU exist."""
import enum
import sys
import types

import numpy as np
import pytest

import attn_deploy as ad
from attn_deploy.backends.tensorrt import runner as runner_module
from attn_deploy.backends.tensorrt import runtime_env
from attn_deploy.errors import AttnDeployError


class FakeCuda:
    """Device memory as host byte arrays keyed by fake pointers."""

    def __init__(self):
        self.memory, self.next, self.devices, self.freed = {}, 4096, [], 0

    def set_device(self, d): self.devices.append(d)
    def create_stream(self): return 77
    def destroy_stream(self, s): pass
    def synchronize(self, s): pass
    def elapsed_ms(self, stream, run): run(); return 1.5

    def malloc(self, nbytes):
        self.next += 4096
        self.memory[self.next] = bytearray(nbytes)
        return self.next

    def free(self, ptr):
        del self.memory[ptr]
        self.freed += 1

    def memcpy_htod(self, ptr, host, stream):
        self.memory[ptr][:] = np.ascontiguousarray(host).tobytes()

    def memcpy_dtoh(self, host, ptr, stream):
        host[...] = np.frombuffer(bytes(self.memory[ptr]), dtype=host.dtype).reshape(host.shape)


def fake_trt(cuda, engine_dtype):
    trt = types.ModuleType("tensorrt")
    trt.float32, trt.float16, trt.int32, trt.int64 = "f32", "f16", "i32", "i64"
    trt.bool, trt.int8, trt.uint8 = "b", "i8", "u8"
    trt.TensorIOMode = enum.Enum("TensorIOMode", ["INPUT", "OUTPUT"])
    np_type = {"f32": np.float32, "f16": np.float16}[engine_dtype]

    class Context:
        def __init__(self):
            self.shapes, self.addresses = {}, {}

        def set_input_shape(self, name, shape):
            if shape[1] != 64:
                return False
            self.shapes[name] = shape
            return True

        def set_tensor_address(self, name, ptr): self.addresses[name] = ptr
        def get_tensor_shape(self, name): return self.shapes["x"]

        def execute_async_v3(self, stream):
            assert stream == 77
            x = np.frombuffer(bytes(cuda.memory[self.addresses["x"]]), np_type)
            cuda.memory[self.addresses["y"]][:] = (2 * x).astype(np_type).tobytes()
            return True

    class Engine:
        num_io_tensors = 2
        device_memory_size_v2 = 3 << 20
        def get_tensor_name(self, i): return ["x", "y"][i]
        def get_tensor_dtype(self, name): return engine_dtype
        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "x" else trt.TensorIOMode.OUTPUT
        def create_execution_context(self): return Context()

    class Runtime:
        def __init__(self, logger): pass
        def deserialize_cuda_engine(self, data): return Engine() if data == b"engine" else None
    trt.Runtime = Runtime
    return trt


@pytest.fixture
def make_runner(monkeypatch, tmp_path):
    path = ad.export_block("se", tmp_path / "se.onnx")
    (tmp_path / "se.engine").write_bytes(b"engine")

    def make(engine_dtype="f32", device=0):
        cuda = FakeCuda()
        trt = fake_trt(cuda, engine_dtype)
        monkeypatch.setattr(runtime_env, "_import_tensorrt", lambda: (trt, ""))
        import attn_deploy.backends.tensorrt.cuda_runtime as cr
        import attn_deploy.backends.tensorrt.engine_builder as eb
        monkeypatch.setattr(cr, "cuda_runtime", lambda: cuda)
        monkeypatch.setattr(eb, "build_engine", lambda p, **kw: types.SimpleNamespace(
            path=tmp_path / "se.engine", profile={"x": "min 1x64x1x1 ..."}))
        monkeypatch.setattr(eb, "collecting_logger", lambda t: types.SimpleNamespace(errors=[]))
        monkeypatch.setattr(runner_module.TensorRTRunner, "runtime_availability",
                            classmethod(lambda cls: (True, "")))
        return runner_module.TensorRTRunner(path, device=device), cuda
    return make


@pytest.mark.parametrize("engine_dtype", ["f32", "f16"])
def test_infer_uploads_runs_and_downloads_in_the_files_dtypes(make_runner, engine_dtype):
    runner, cuda = make_runner(engine_dtype, device=1)
    rng = np.random.default_rng(3)
    with runner:
        for shape in [(1, 64, 5, 7), (3, 64, 2, 9)]:  # two shapes: buffers follow the shape
            x = rng.standard_normal(shape).astype(np.float32)
            y = runner.infer({"x": x})["y"]
            assert y.dtype == np.float32 and y.shape == shape
            tol = 0 if engine_dtype == "f32" else 2e-3 * np.abs(2 * x).max()
            np.testing.assert_allclose(y, 2 * x, atol=tol)
        assert runner.time_infer({"x": x}) == 1.5
        assert runner.device_memory_mb == 3.0
    assert set(cuda.devices) == {1} and not cuda.memory  # every buffer freed on deactivate


def test_shape_outside_the_profile_and_missing_inputs_are_named(make_runner):
    runner, _ = make_runner()
    with runner:
        with pytest.raises(AttnDeployError, match="outside the engine's profile"):
            runner.infer({"x": np.zeros((1, 64, 4, 4), np.float32)[:, :32]}, check=False)
        with pytest.raises(AttnDeployError, match="missing inputs"):
            runner.infer({}, check=False)
