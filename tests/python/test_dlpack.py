"""The DLPack consumer: versioned and legacy capsules, made by hand here with their own
struct definitions (so a layout mistake in the package cannot hide), and by NumPy."""

import ctypes
import gc
import weakref
from ctypes import POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_uint8, c_uint16
from ctypes import c_uint32, c_uint64, c_void_p

import numpy as np
import pytest

import culoss
from culoss import _dlpack


class Device(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class Tensor(Structure):
    _fields_ = [("data", c_void_p), ("device", Device), ("ndim", c_int32), ("dtype", DType),
                ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)),
                ("byte_offset", c_uint64)]


class Managed(Structure):  # DLManagedTensor (legacy)
    _fields_ = [("dl_tensor", Tensor), ("manager_ctx", c_void_p), ("deleter", c_void_p)]


class Version(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class ManagedVersioned(Structure):  # DLManagedTensorVersioned (DLPack 1.x)
    _fields_ = [("version", Version), ("manager_ctx", c_void_p), ("deleter", c_void_p),
                ("flags", c_uint64), ("dl_tensor", Tensor)]


def test_struct_layouts_match_dlpack():
    assert ctypes.sizeof(Tensor) == 48
    assert ctypes.sizeof(Managed) == 64
    assert ManagedVersioned.dl_tensor.offset == 32
    for ours, pkg in ((Tensor, _dlpack.DLTensor), (Managed, _dlpack.DLManagedTensor),
                      (ManagedVersioned, _dlpack.DLManagedTensorVersioned)):
        assert ctypes.sizeof(ours) == ctypes.sizeof(pkg)
        for (name, _), (pname, _) in zip(ours._fields_, pkg._fields_):
            assert name == pname and getattr(ours, name).offset == getattr(pkg, pname).offset


_DELETER = ctypes.PYFUNCTYPE(None, c_void_p)
_DESTRUCTOR = ctypes.PYFUNCTYPE(None, c_void_p)
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, c_char_p, c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi))
_is_valid = ctypes.PYFUNCTYPE(c_int, c_void_p, c_char_p)(("PyCapsule_IsValid", ctypes.pythonapi))
_get_pointer = ctypes.PYFUNCTYPE(c_void_p, c_void_p, c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))
_get_name = ctypes.PYFUNCTYPE(c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))

_CODES = {"f": 2, "i": 0, "u": 1}


class HandMade:
    """A producer with a hand-built capsule over a NumPy array's memory; counts deleter
    calls. ``legacy`` producers reject ``max_version`` like pre-1.0 libraries."""

    def __init__(self, arr, legacy=False, major=1, flags=0):
        self.arr = np.ascontiguousarray(arr)
        self.legacy = legacy
        self.major = major
        self.flags = flags
        self.deleted = []
        self.calls = []
        self.last_capsule = None
        self._keep = []

    def __dlpack_device__(self):
        return (1, 0)

    def __dlpack__(self, stream=None, **kwargs):
        self.calls.append(dict(kwargs, stream=stream))
        if self.legacy and "max_version" in kwargs:
            raise TypeError("__dlpack__() got an unexpected keyword argument 'max_version'")
        a = self.arr
        shape = (c_int64 * a.ndim)(*a.shape)
        m = Managed() if self.legacy else ManagedVersioned()
        t = m.dl_tensor
        t.data = a.ctypes.data
        t.device = Device(1, 0)
        t.ndim = a.ndim
        t.dtype = DType(_CODES[a.dtype.kind], a.dtype.itemsize * 8, 1)
        t.shape = shape
        t.strides = None
        t.byte_offset = 0
        if not self.legacy:
            m.version = Version(self.major, 0)
            m.flags = self.flags
        name = b"dltensor" if self.legacy else b"dltensor_versioned"
        deleted = self.deleted  # not self: no reference cycle through the callbacks

        def deleter(ptr, m=m):
            assert ptr == ctypes.addressof(m)
            deleted.append(ptr)

        def destructor(cap):
            # what a producer does: free the tensor only when no consumer took it
            if _is_valid(cap, name):
                deleter(_get_pointer(cap, name))

        d, dd = _DELETER(deleter), _DESTRUCTOR(destructor)
        m.deleter = ctypes.cast(d, c_void_p)
        self._keep.append((m, shape, d, dd, name))
        cap = _capsule_new(ctypes.addressof(m), name, ctypes.cast(dd, c_void_p))
        self.last_capsule = cap
        return cap


@pytest.mark.parametrize("legacy", [False, True], ids=["versioned", "legacy"])
def test_hand_made_capsules(legacy, rng):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    ref_value, ref_grad = culoss.CrossEntropy()(x, t)
    px, pt = HandMade(x, legacy), HandMade(t, legacy)
    value, grad = culoss.CrossEntropy()(px, pt)
    assert isinstance(value, np.ndarray) and isinstance(grad, np.ndarray)
    np.testing.assert_array_equal(value, ref_value)
    np.testing.assert_array_equal(grad, ref_grad)
    for p in (px, pt):
        # asked for DLPack 1.0 first; a legacy producer is asked again the old way
        assert p.calls[0].get("max_version") == (1, 0)
        assert len(p.calls) == (2 if legacy else 1)
        assert len(p.deleted) == 1  # the consumer called the deleter, once
        used = b"used_dltensor" if legacy else b"used_dltensor_versioned"
        assert _get_name(p.last_capsule) == used
        p.last_capsule = None
    gc.collect()
    assert len(px.deleted) == 1 and len(pt.deleted) == 1  # the destructor did not call it again


def test_deleter_runs_when_the_call_fails(rng):
    px = HandMade(rng.standard_normal((2, 3, 4)))
    pt = HandMade(rng.integers(0, 3, (2, 5)))
    with pytest.raises(culoss.ShapeMismatchError):
        culoss.Dice()(px, pt)
    assert len(px.deleted) == 1 and len(pt.deleted) == 1


def test_unknown_major_version_is_refused_and_left_to_the_producer(rng):
    p = HandMade(rng.standard_normal((2, 3)), major=2)
    cap = p.__dlpack__(max_version=(1, 0))
    with pytest.raises(BufferError, match="version 2"):
        _dlpack.consume(cap)
    assert _get_name(cap) == b"dltensor_versioned"  # not taken
    assert p.deleted == []
    del cap
    p.last_capsule = None
    gc.collect()
    assert len(p.deleted) == 1  # freed by the capsule's own destructor


def test_read_only_capsule_is_refused_as_an_output(rng):
    p = HandMade(np.zeros(3), flags=_dlpack.DLPACK_FLAG_BITMASK_READ_ONLY)
    cap = p.__dlpack__(max_version=(1, 0))
    with pytest.raises(BufferError, match="read-only"):
        _dlpack.consume(cap, writable=True)
    assert _get_name(cap) == b"dltensor_versioned"
    b = _dlpack.consume(cap)  # fine as an input
    assert b.read_only
    b.release()
    b.release()  # idempotent
    assert len(p.deleted) == 1


def test_used_capsule_is_refused(rng):
    cap = np.zeros(3).__dlpack__()
    _dlpack.consume(cap).release()
    with pytest.raises(BufferError, match="already consumed"):
        _dlpack.consume(cap)
    with pytest.raises(TypeError):
        _dlpack.consume(object())


def test_numpy_capsules_both_kinds(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    with _dlpack.borrow(x) as b:
        assert b.shape == x.shape and b.dtype == (2, 32, 1) and b.device == (1, 0)
        assert b.tensor.data == x.ctypes.data
        versioned = b.versioned
    if tuple(int(v) for v in np.__version__.split(".")[:2]) >= (2, 1):
        assert versioned  # NumPy >= 2.1 exports DLPack 1.0

    class LegacyOnly:  # forwards to NumPy's legacy export
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, stream=None):
            return self.a.__dlpack__()

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    with _dlpack.borrow(LegacyOnly(x)) as b:
        assert not b.versioned and b.tensor.data == x.ctypes.data
    t = rng.integers(0, 3, (2, 4))
    v1, g1 = culoss.Dice()(x, t)
    v2, g2 = culoss.Dice()(LegacyOnly(x), LegacyOnly(t))
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)


def test_a_capsule_can_be_passed_directly(rng):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    v1, g1 = culoss.Dice()(x, t)
    v2, g2 = culoss.Dice()(x.__dlpack__(), t.__dlpack__())
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)


def test_the_producer_stays_alive_while_borrowed(rng):
    class Owner:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

    o = Owner(rng.standard_normal(4))
    ref = weakref.ref(o)
    with _dlpack.borrow(o) as b:
        del o
        gc.collect()
        assert ref() is not None and b.owner is ref()
    gc.collect()
    assert ref() is None


def test_memory_is_read_in_place_not_copied(rng):
    x = rng.standard_normal((2, 3, 4))
    with _dlpack.borrow(x) as b:
        assert b.tensor.data == x.ctypes.data
    # the gradient overwrites the very buffer when asked to
    t = rng.integers(0, 3, (2, 4))
    _, g = culoss.Dice()(x, t)
    addr = x.ctypes.data
    culoss.Dice()(x, t, grad_out=x)
    assert x.ctypes.data == addr
    np.testing.assert_array_equal(x, g)


def test_read_only_numpy_array_cannot_take_the_gradient(rng):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    x.setflags(write=False)
    try:
        with _dlpack.borrow(x) as b:
            read_only = b.read_only
    except BufferError:
        pytest.skip("this NumPy does not export read-only arrays")
    assert read_only
    culoss.Dice()(x, t)  # reading is fine
    with pytest.raises(BufferError):
        culoss.Dice()(x, t, grad_out=x)


def test_non_dlpack_objects_are_refused():
    with pytest.raises(TypeError, match="__dlpack__"):
        culoss.Dice()([[0.0, 1.0]], [[0, 1]])
