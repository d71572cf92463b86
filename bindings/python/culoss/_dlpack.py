"""DLPack structures and the consumer side of the capsule protocol (ctypes only).

A producer's ``__dlpack__`` returns a PyCapsule named ``"dltensor_versioned"`` (DLPack >= 1.0,
holding a ``DLManagedTensorVersioned*``) or ``"dltensor"`` (legacy, a ``DLManagedTensor*``).
A consumer that takes the tensor renames the capsule to ``"used_dltensor_versioned"`` /
``"used_dltensor"`` -- so that the capsule's own destructor leaves it alone -- and becomes
responsible for calling the managed tensor's ``deleter`` when it no longer needs the memory.
:func:`borrow` does exactly that around one culoss call: the producer object and the
memory stay alive until the deleter has run.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from ctypes import (POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_uint8, c_uint16,
                    c_uint32, c_uint64, c_void_p)
from typing import Any, Iterator, Optional, Tuple

# DLDeviceType values used here
kDLCPU = 1
kDLCUDA = 2
kDLCUDAHost = 3
kDLCUDAManaged = 13

# DLDataTypeCode values
kDLInt = 0
kDLUInt = 1
kDLFloat = 2
kDLBfloat = 4
kDLBool = 6

DLPACK_FLAG_BITMASK_READ_ONLY = 1 << 0
DLPACK_FLAG_BITMASK_IS_COPIED = 1 << 1

#: The DLPack version this consumer understands (asked for with ``max_version``).
MAX_VERSION = (1, 0)


class DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [
        ("data", c_void_p),
        ("device", DLDevice),
        ("ndim", c_int32),
        ("dtype", DLDataType),
        ("shape", POINTER(c_int64)),
        ("strides", POINTER(c_int64)),
        ("byte_offset", c_uint64),
    ]


class DLManagedTensor(Structure):
    """Legacy (DLPack < 1.0) managed tensor: the DLTensor comes first."""
    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", c_void_p),
        ("deleter", c_void_p),  # void (*)(DLManagedTensor*)
    ]


class DLPackVersion(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLManagedTensorVersioned(Structure):
    """DLPack 1.x managed tensor: version, manager_ctx, deleter, flags, then the DLTensor."""
    _fields_ = [
        ("version", DLPackVersion),
        ("manager_ctx", c_void_p),
        ("deleter", c_void_p),  # void (*)(DLManagedTensorVersioned*)
        ("flags", c_uint64),
        ("dl_tensor", DLTensor),
    ]


# The deleter is called with the GIL held (PYFUNCTYPE): some producers' deleters touch Python
# objects without taking the GIL themselves.
DELETER = ctypes.PYFUNCTYPE(None, c_void_p)
# Callable deleters by address: a producer has one or a few, and building the ctypes function
# object is a noticeable part of a small call.
_deleters: dict = {}


def _deleter(address: int) -> Any:
    fn = _deleters.get(address)
    if fn is None:
        fn = _deleters[address] = DELETER(address)
    return fn

_api = ctypes.pythonapi
_api.PyCapsule_IsValid.restype = c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, c_char_p]
_api.PyCapsule_GetName.restype = c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_GetPointer.restype = c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, c_char_p]
_api.PyCapsule_SetName.restype = c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, c_void_p]

_LEGACY = b"dltensor"
_VERSIONED = b"dltensor_versioned"
# PyCapsule_SetName keeps the pointer, not a copy: the new names must live as long as any
# capsule that carries them, so they are module globals that are never freed.
_USED_LEGACY = ctypes.create_string_buffer(b"used_dltensor")
_USED_VERSIONED = ctypes.create_string_buffer(b"used_dltensor_versioned")


def capsule_name(capsule: Any) -> Optional[bytes]:
    """The name of a PyCapsule, or None when ``capsule`` is not one."""
    if type(capsule).__name__ != "PyCapsule":
        return None
    return _api.PyCapsule_GetName(capsule)


def device_of(obj: Any) -> Tuple[int, int]:
    """``(device_type, device_id)`` from ``__dlpack_device__``; the CPU when it is absent."""
    fn = getattr(obj, "__dlpack_device__", None)
    if fn is None:
        return (kDLCPU, 0)
    dev = fn()
    return (int(dev[0]), int(dev[1]))


def _is_cpu_torch_tensor(obj: Any) -> bool:
    cls = type(obj)
    return (cls.__name__ == "Tensor" and cls.__module__ == "torch" and not obj.requires_grad
            and obj.device.type == "cpu")


def export(obj: Any, stream: Optional[int] = None) -> Any:
    """Calls ``obj.__dlpack__``: DLPack 1.0 first (``max_version``), the legacy call when the
    producer does not take that keyword. ``stream`` is passed for CUDA producers only."""
    if stream is None and _is_cpu_torch_tensor(obj):
        # PyTorch's C exporter: the same tensor as __dlpack__ (a legacy capsule) without its
        # Python-side checks, which apply to CUDA streams only; a noticeable part of a small call
        import torch.utils.dlpack
        return torch.utils.dlpack.to_dlpack(obj)
    fn = getattr(obj, "__dlpack__", None)
    if fn is None:
        raise TypeError("expected an array with __dlpack__ (NumPy >= 1.22, PyTorch, CuPy, JAX, "
                        "...); got %s" % type(obj).__name__)
    kwargs = {} if stream is None else {"stream": stream}
    try:
        return fn(max_version=MAX_VERSION, **kwargs)
    except TypeError:
        # a producer from before DLPack 1.0 does not know max_version
        return fn(**kwargs)


class Borrowed:
    """A DLTensor taken from a capsule; valid until :meth:`release`."""

    def __init__(self, owner: Any, capsule: Any, tensor: DLTensor, managed_ptr: int,
                 deleter: Optional[int], versioned: bool, read_only: bool):
        self.owner = owner  # keeps the producer alive while the memory is in use
        self.capsule = capsule
        self.tensor = tensor  # our own copy of the DLTensor struct (shape/strides point into
        #                       the producer's managed tensor, alive until the deleter runs)
        self.managed_ptr = managed_ptr
        self.deleter = deleter
        self.versioned = versioned
        self.read_only = read_only
        self.released = False
        # an empty tensor has no layout: NumPy exports strides of 0 for it, which culoss would
        # refuse as non-compact, so its strides are dropped (nothing is ever read through them)
        if tensor.strides and 0 in tensor.shape[:tensor.ndim]:
            tensor.strides = None

    @property
    def shape(self) -> Tuple[int, ...]:
        t = self.tensor
        return tuple(int(t.shape[i]) for i in range(t.ndim))

    @property
    def device(self) -> Tuple[int, int]:
        return (int(self.tensor.device.device_type), int(self.tensor.device.device_id))

    @property
    def dtype(self) -> Tuple[int, int, int]:
        d = self.tensor.dtype
        return (int(d.code), int(d.bits), int(d.lanes))

    def pointer(self):
        return ctypes.pointer(self.tensor)

    def release(self) -> None:
        """Calls the producer's deleter (once)."""
        if self.released:
            return
        self.released = True
        if self.deleter:
            _deleter(self.deleter)(self.managed_ptr)
        self.capsule = None
        self.owner = None


def consume(capsule: Any, owner: Any = None, writable: bool = False) -> Borrowed:
    """Takes the tensor out of a ``dltensor``/``dltensor_versioned`` capsule.

    The capsule is renamed to ``used_...`` and the returned object must be released (which
    calls the deleter). A capsule that is refused (already used, unknown name, a DLPack major
    version other than 1, read-only when ``writable``) is left untouched: its own destructor
    frees it.
    """
    name = capsule_name(capsule)
    if name is None:
        raise TypeError("__dlpack__ returned %s, not a PyCapsule" % type(capsule).__name__)
    if name == _VERSIONED:
        ptr = _api.PyCapsule_GetPointer(capsule, _VERSIONED)
        if not ptr:
            raise ValueError("DLPack capsule holds a NULL pointer")
        managed = DLManagedTensorVersioned.from_address(ptr)
        if managed.version.major != MAX_VERSION[0]:
            raise BufferError("DLPack tensor has version %d.%d; culoss reads major version %d"
                              % (managed.version.major, managed.version.minor, MAX_VERSION[0]))
        read_only = bool(managed.flags & DLPACK_FLAG_BITMASK_READ_ONLY)
        if writable and read_only:
            raise BufferError("the output array is read-only (DLPack READ_ONLY flag)")
        if _api.PyCapsule_SetName(capsule, ctypes.addressof(_USED_VERSIONED)) != 0:
            raise RuntimeError("PyCapsule_SetName failed")
        tensor = DLTensor.from_buffer_copy(managed.dl_tensor)
        return Borrowed(owner, capsule, tensor, ptr, managed.deleter, True, read_only)
    if name == _LEGACY:
        ptr = _api.PyCapsule_GetPointer(capsule, _LEGACY)
        if not ptr:
            raise ValueError("DLPack capsule holds a NULL pointer")
        managed = DLManagedTensor.from_address(ptr)
        if _api.PyCapsule_SetName(capsule, ctypes.addressof(_USED_LEGACY)) != 0:
            raise RuntimeError("PyCapsule_SetName failed")
        tensor = DLTensor.from_buffer_copy(managed.dl_tensor)
        return Borrowed(owner, capsule, tensor, ptr, managed.deleter, False, False)
    if name in (b"used_dltensor", b"used_dltensor_versioned"):
        raise BufferError("this DLPack capsule was already consumed")
    raise TypeError("not a DLPack capsule (name %r)" % (name,))


def take(obj: Any, stream: Optional[int] = None, writable: bool = False) -> Borrowed:
    """The DLTensor of ``obj`` (an array with ``__dlpack__`` or a DLPack capsule itself), to be
    released by the caller (:meth:`Borrowed.release`)."""
    if type(obj).__name__ == "PyCapsule":
        return consume(obj, None, writable=writable)
    return consume(export(obj, stream), obj, writable=writable)


@contextmanager
def borrow(obj: Any, stream: Optional[int] = None, writable: bool = False) -> Iterator[Borrowed]:
    """The DLTensor of ``obj`` for the duration of a ``with`` block (:func:`take`); the deleter
    runs when the block ends, also on an exception."""
    b = take(obj, stream, writable)
    try:
        yield b
    finally:
        b.release()
