"""What culoss needs from each array library: its CUDA stream, output allocation, workspace
allocation, and turning results back into its own arrays.

Frameworks are recognised by the module of the input's type, and imported only when an input
of theirs arrives: NumPy is the only hard dependency of culoss, and not even that for callers
who pass only PyTorch, CuPy or JAX arrays.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Optional, Sequence, Tuple

from ._dlpack import kDLCPU, kDLCUDA
from ._errors import UnsupportedDeviceError

Shape = Tuple[int, ...]


def _dlpack_stream(stream: int) -> int:
    # DLPack's stream argument for CUDA: 1 is the legacy default stream (0 is not allowed).
    return 1 if stream == 0 else stream


class Framework:
    """Base: CPU arrays come back as NumPy arrays, CUDA work runs on the default stream."""

    name = "numpy"

    def prepare(self, obj: Any) -> Any:
        """The object to export (e.g. detached from an autograd graph)."""
        return obj

    def device_context(self, device: Tuple[int, int]) -> ContextManager:
        return contextlib.nullcontext()

    def current_stream(self, obj: Any, device: Tuple[int, int]) -> int:
        """The raw cudaStream_t (as an int, 0 = the legacy default stream) work must run on."""
        return 0

    def empty(self, shape: Shape, dtype: str, like: Any, device: Tuple[int, int]) -> Any:
        if device[0] != kDLCPU:
            return _cuda_allocator().empty(shape, dtype, None, device)
        import numpy as np
        return np.empty(shape, dtype=np.dtype(dtype))

    def workspace(self, nbytes: int, like: Any, device: Tuple[int, int]) -> Tuple[Any, int]:
        """``(keepalive, pointer)`` of at least ``nbytes`` bytes on ``device``, or ``(None, 0)``
        to let culoss allocate."""
        if device[0] == kDLCPU:
            return None, 0
        return _cuda_allocator().workspace(nbytes, None, device)

    def finish(self, arr: Any, like: Any, device: Tuple[int, int]) -> Any:
        """Turns an array from :meth:`empty` into one of this framework."""
        return arr


class NumPy(Framework):
    name = "numpy"


class Torch(Framework):
    name = "torch"

    def prepare(self, obj: Any) -> Any:
        return obj.detach() if obj.requires_grad else obj

    def device_context(self, device: Tuple[int, int]) -> ContextManager:
        if device[0] == kDLCUDA:
            import torch
            return torch.cuda.device(device[1])
        return contextlib.nullcontext()

    def current_stream(self, obj: Any, device: Tuple[int, int]) -> int:
        import torch
        return int(torch.cuda.current_stream(device[1]).cuda_stream)

    def _device(self, like: Any, device: Tuple[int, int]):
        import torch
        if like is not None and hasattr(like, "device"):
            return like.device
        return torch.device("cuda", device[1]) if device[0] == kDLCUDA else torch.device("cpu")

    def empty(self, shape: Shape, dtype: str, like: Any, device: Tuple[int, int]) -> Any:
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=self._device(like, device))

    def workspace(self, nbytes: int, like: Any, device: Tuple[int, int]) -> Tuple[Any, int]:
        if device[0] == kDLCPU:
            return None, 0
        import torch
        # the caching allocator is stream-ordered: the block is reused only after the work
        # queued on the current stream, which is where culoss runs
        buf = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=self._device(like, device))
        return buf, int(buf.data_ptr())


class CuPy(Framework):
    name = "cupy"

    def device_context(self, device: Tuple[int, int]) -> ContextManager:
        if device[0] == kDLCUDA:
            import cupy
            return cupy.cuda.Device(device[1])
        return contextlib.nullcontext()

    def current_stream(self, obj: Any, device: Tuple[int, int]) -> int:
        import cupy
        with cupy.cuda.Device(device[1]):
            return int(cupy.cuda.get_current_stream().ptr)

    def empty(self, shape: Shape, dtype: str, like: Any, device: Tuple[int, int]) -> Any:
        import cupy
        if device[0] == kDLCPU:
            return NumPy().empty(shape, dtype, like, device)
        with cupy.cuda.Device(device[1]):
            return cupy.empty(shape, dtype=cupy.dtype(dtype))

    def workspace(self, nbytes: int, like: Any, device: Tuple[int, int]) -> Tuple[Any, int]:
        if device[0] == kDLCPU:
            return None, 0
        import cupy
        with cupy.cuda.Device(device[1]):
            buf = cupy.empty(max(nbytes, 1), dtype=cupy.uint8)
        return buf, int(buf.data.ptr)


class Jax(Framework):
    """JAX arrays are immutable: results are computed into NumPy (CPU) or CuPy/PyTorch (CUDA)
    buffers, then handed to JAX (``jax.dlpack.from_dlpack``, zero-copy on CUDA)."""

    name = "jax"

    def _alloc(self, device: Tuple[int, int]) -> Framework:
        return _cuda_allocator() if device[0] == kDLCUDA else NumPy()

    def device_context(self, device: Tuple[int, int]) -> ContextManager:
        return self._alloc(device).device_context(device)

    def current_stream(self, obj: Any, device: Tuple[int, int]) -> int:
        return self._alloc(device).current_stream(None, device)

    def empty(self, shape: Shape, dtype: str, like: Any, device: Tuple[int, int]) -> Any:
        return self._alloc(device).empty(shape, dtype, None, device)

    def workspace(self, nbytes: int, like: Any, device: Tuple[int, int]) -> Tuple[Any, int]:
        return self._alloc(device).workspace(nbytes, None, device)

    def finish(self, arr: Any, like: Any, device: Tuple[int, int]) -> Any:
        import jax
        if device[0] == kDLCPU:
            target = None
            try:
                target = next(iter(like.devices()))
            except Exception:  # an old jax without Array.devices()
                pass
            return jax.device_put(arr, target)
        import jax.dlpack
        try:
            return jax.dlpack.from_dlpack(arr)
        except TypeError:  # a jax that wants a capsule
            return jax.dlpack.from_dlpack(arr.__dlpack__())


def _cuda_allocator() -> Framework:
    """A framework that can allocate CUDA memory for producers that cannot (JAX, others)."""
    seen = []  # what is installed but cannot reach a GPU
    try:
        import cupy
        try:
            if cupy.cuda.runtime.getDeviceCount() > 0:
                return CuPy()
        except Exception:  # CuPy without a driver or device raises its own runtime error
            pass
        seen.append("CuPy %s" % cupy.__version__)
    except ImportError:
        pass
    try:
        import torch
        if torch.cuda.is_available():
            return Torch()
        seen.append("PyTorch %s (torch.cuda.is_available() is False)" % torch.__version__)
    except ImportError:
        pass
    if seen:
        raise no_cuda_device_error(" and ".join(seen))
    raise RuntimeError("culoss needs CuPy or PyTorch to allocate CUDA outputs for this input "
                       "type; install one of them")


def no_cuda_device_error(seen: str) -> UnsupportedDeviceError:
    return UnsupportedDeviceError(
        4, "CULOSS_ERROR_UNSUPPORTED_DEVICE",
        "the input is a CUDA array, but no usable CUDA device was found: %s sees none (no "
        "GPU, no driver, or a CPU-only build)" % seen)


def refuse_meta(name: str, obj: Any) -> None:
    """PyTorch meta tensors have a shape but no data: culoss cannot compute on them."""
    if getattr(obj, "is_meta", False) is True:
        raise UnsupportedDeviceError(
            4, "CULOSS_ERROR_UNSUPPORTED_DEVICE",
            "%s is a PyTorch meta tensor (a shape without data); culoss computes on CPU and "
            "CUDA tensors. The culoss.torch modules accept meta tensors for shape propagation "
            "(the value's shape and dtype, no compute)." % name)


_BY_MODULE = {"numpy": NumPy, "torch": Torch, "cupy": CuPy, "jax": Jax, "jaxlib": Jax}


def framework_of(obj: Any) -> Framework:
    root = type(obj).__module__.split(".")[0]
    cls = _BY_MODULE.get(root)
    return cls() if cls is not None else Framework()


def dlpack_stream_arg(device: Tuple[int, int], stream: Optional[int]) -> Optional[int]:
    """The ``stream=`` argument for ``__dlpack__`` on ``device`` (None on the CPU)."""
    if device[0] != kDLCUDA or stream is None:
        return None
    return _dlpack_stream(stream)


def shape_tuple(shape: Sequence[int]) -> Shape:
    return tuple(int(s) for s in shape)
