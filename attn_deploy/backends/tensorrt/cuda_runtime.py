"""The few CUDA runtime calls the TensorRT backend needs, without PyTorch.

Device selection, device identity, device memory, host<->device copies, streams and events,
called through ``ctypes`` on the CUDA runtime library (``libcudart``) that Polygraphy finds (CUDA
toolkit, JetPack, or the ``nvidia-cuda-runtime`` wheel). A deployed Jetson or server that runs
engines needs TensorRT and this library, not torch.

    cuda = cuda_runtime()              # RuntimeUnavailableError when there is no CUDA runtime
    cuda.set_device(1)
    ptr = cuda.malloc(nbytes); cuda.memcpy_htod(ptr, array, stream); cuda.free(ptr)
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from attn_deploy.errors import AttnDeployError, RuntimeUnavailableError

# cudaMemcpyKind and cudaDeviceAttr values (cuda_runtime_api.h / driver_types.h).
_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76
# cudaDeviceProp begins with `char name[256]`; the struct is ~1 KiB, the buffer leaves room.
_PROPS_BYTES = 16384


class CudaRuntime:
    """Thin, checked wrappers over a loaded ``libcudart`` (``lib``: a ctypes.CDLL)."""

    def __init__(self, lib):
        self.lib = lib

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            name = self.lib.cudaGetErrorString
            name.restype = ctypes.c_char_p
            raise AttnDeployError(f"CUDA {what} failed: error {status} "
                                  f"({name(status).decode(errors='replace')})")

    def device_count(self) -> int:
        n = ctypes.c_int(0)
        status = self.lib.cudaGetDeviceCount(ctypes.byref(n))
        return n.value if status == 0 else 0

    def set_device(self, device: int) -> None:
        count = self.device_count()
        if not 0 <= device < count:
            raise AttnDeployError(f"device: expected a CUDA device index in 0..{count - 1}, "
                                  f"got {device}" if count else "device: no CUDA device")
        self._check(self.lib.cudaSetDevice(ctypes.c_int(device)), f"cudaSetDevice({device})")

    def capability(self, device: int) -> tuple[int, int]:
        values = []
        for attr in (_ATTR_CC_MAJOR, _ATTR_CC_MINOR):
            v = ctypes.c_int(0)
            self._check(self.lib.cudaDeviceGetAttribute(ctypes.byref(v), attr, device),
                        "cudaDeviceGetAttribute")
            values.append(v.value)
        return values[0], values[1]

    def device_name(self, device: int) -> str:
        props = ctypes.create_string_buffer(_PROPS_BYTES)
        fn = getattr(self.lib, "cudaGetDeviceProperties_v2", None) or \
            self.lib.cudaGetDeviceProperties
        self._check(fn(props, ctypes.c_int(device)), "cudaGetDeviceProperties")
        return props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))),
                    f"cudaMalloc({nbytes})")
        return ptr.value

    def free(self, ptr: int) -> None:
        self._check(self.lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def memcpy_htod(self, ptr: int, host: np.ndarray, stream: int) -> None:
        host = np.ascontiguousarray(host)
        self._check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(ptr), host.ctypes.data_as(
            ctypes.c_void_p), ctypes.c_size_t(host.nbytes), _HOST_TO_DEVICE,
            ctypes.c_void_p(stream)), "cudaMemcpyAsync (host to device)")

    def memcpy_dtoh(self, host: np.ndarray, ptr: int, stream: int) -> None:
        if not host.flags.c_contiguous:
            raise AttnDeployError("internal: device-to-host copy needs a contiguous array")
        self._check(self.lib.cudaMemcpyAsync(host.ctypes.data_as(ctypes.c_void_p),
                                             ctypes.c_void_p(ptr), ctypes.c_size_t(host.nbytes),
                                             _DEVICE_TO_HOST, ctypes.c_void_p(stream)),
                    "cudaMemcpyAsync (device to host)")

    def create_stream(self) -> int:
        s = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return s.value or 0

    def synchronize(self, stream: int) -> None:
        self._check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)),
                    "cudaStreamSynchronize")

    def destroy_stream(self, stream: int) -> None:
        self._check(self.lib.cudaStreamDestroy(ctypes.c_void_p(stream)), "cudaStreamDestroy")

    def elapsed_ms(self, stream: int, run) -> float:
        """Milliseconds ``run()`` takes on ``stream``, measured with two CUDA events."""
        start, end = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(self.lib.cudaEventCreate(ctypes.byref(start)), "cudaEventCreate")
        self._check(self.lib.cudaEventCreate(ctypes.byref(end)), "cudaEventCreate")
        try:
            self._check(self.lib.cudaEventRecord(start, ctypes.c_void_p(stream)), "cudaEventRecord")
            run()
            self._check(self.lib.cudaEventRecord(end, ctypes.c_void_p(stream)), "cudaEventRecord")
            self._check(self.lib.cudaEventSynchronize(end), "cudaEventSynchronize")
            ms = ctypes.c_float(0.0)
            self._check(self.lib.cudaEventElapsedTime(ctypes.byref(ms), start, end),
                        "cudaEventElapsedTime")
            return float(ms.value)
        finally:
            self.lib.cudaEventDestroy(start)
            self.lib.cudaEventDestroy(end)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[CudaRuntime | None, str]:
    try:
        from polygraphy import cuda as polygraphy_cuda
        lib = polygraphy_cuda.wrapper().handle
    except Exception as exc:  # no libcudart anywhere Polygraphy looks, or Polygraphy absent
        return None, f"the CUDA runtime library (libcudart) cannot be loaded ({exc})"
    return CudaRuntime(lib), ""


def cuda_runtime() -> CudaRuntime:
    """The process's CUDA runtime; RuntimeUnavailableError saying why when there is none."""
    runtime, why = _load()
    if runtime is None:
        raise RuntimeUnavailableError(why)
    return runtime


def cuda_availability() -> tuple[bool, str]:
    """(available, reason): a CUDA runtime library and at least one device."""
    runtime, why = _load()
    if runtime is None:
        return False, why
    if runtime.device_count() == 0:
        return False, "no CUDA device"
    return True, ""
