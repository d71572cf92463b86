"""culoss_status -> exception class, with culoss_last_error() as the message."""

import numpy as np
import pytest

import culoss
from culoss import _errors, _lib

STATUS = {
    1: ("CULOSS_ERROR_INVALID_ARGUMENT", culoss.InvalidArgumentError, ValueError),
    2: ("CULOSS_ERROR_SHAPE_MISMATCH", culoss.ShapeMismatchError, ValueError),
    3: ("CULOSS_ERROR_UNSUPPORTED_DTYPE", culoss.UnsupportedDtypeError, TypeError),
    4: ("CULOSS_ERROR_UNSUPPORTED_DEVICE", culoss.UnsupportedDeviceError, ValueError),
    5: ("CULOSS_ERROR_INVALID_TARGET", culoss.InvalidTargetError, ValueError),
    6: ("CULOSS_ERROR_OUT_OF_MEMORY", culoss.OutOfMemoryError, MemoryError),
    7: ("CULOSS_ERROR_INSUFFICIENT_WORKSPACE", culoss.InsufficientWorkspaceError, ValueError),
    8: ("CULOSS_ERROR_CUDA", culoss.CudaError, RuntimeError),
    9: ("CULOSS_ERROR_NOT_SUPPORTED", culoss.NotSupportedError, NotImplementedError),
    10: ("CULOSS_ERROR_INTERNAL", culoss.InternalError, RuntimeError),
}


@pytest.mark.parametrize("status", sorted(STATUS))
def test_status_classes(status):
    name, cls, builtin = STATUS[status]
    lib = _lib.lib()
    assert lib.status_name(status) == name  # the library's own name for it
    err = _errors.error_for(status, name, "some detail", "culoss_compute")
    assert type(err) is cls and isinstance(err, culoss.CulossError) and isinstance(err, builtin)
    assert err.status == status and err.status_name == name and err.detail == "some detail"
    assert str(err) == "%s in culoss_compute: some detail" % name


def test_unknown_status_is_a_plain_culoss_error():
    err = _errors.error_for(42, "CULOSS_STATUS_42", "")
    assert type(err) is culoss.CulossError and err.status == 42


def _raises(cls, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.detail and err.detail in str(err)
    assert err.detail == culoss.last_error()  # the thread's culoss_last_error()
    return err


def test_errors_from_real_calls(rng):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    err = _raises(culoss.ShapeMismatchError, culoss.Dice(), x, t[:, :3].copy())
    assert err.status == 2 and "target" in err.detail
    err = _raises(culoss.UnsupportedDtypeError, culoss.Dice(), x.astype(np.int32), t)
    assert "input" in err.detail
    err = _raises(culoss.UnsupportedDtypeError, culoss.Dice(), x, t.astype(np.float32))
    assert "target" in err.detail
    bad = t.copy()
    bad[1, 2] = 5
    err = _raises(culoss.InvalidTargetError, culoss.Dice(), x, bad)
    assert "5" in err.detail
    err = _raises(culoss.InvalidArgumentError, culoss.Dice(), x, t,
                  -np.ones((2, 4), np.float32))
    assert "pixel_weight" in err.detail
    err = _raises(culoss.UnsupportedDtypeError, culoss.Dice(), x, t, np.ones((2, 4)))
    assert "pixel_weight" in err.detail
    err = _raises(culoss.InvalidArgumentError, culoss.BCE(), x, t)  # sigmoid, C=3, indices
    err = _raises(culoss.ShapeMismatchError, culoss.Dice(class_axis=3), x, t)
    err = _raises(culoss.NotSupportedError, culoss.Dice(), x[:, :, ::2], t[:, ::2])
    assert "strides" in err.detail
    # a gradient buffer of the wrong shape
    err = _raises(culoss.ShapeMismatchError, culoss.Dice(), x, t, grad_out=np.empty((2, 3, 5)))
    assert "grad_input" in err.detail


def test_device_other_than_cpu_or_cuda(rng):
    class OnPinnedHost:  # claims kDLCUDAHost: culoss refuses it, the package lets it say so
        def __init__(self, a):
            self.a = a

        def __dlpack_device__(self):
            return (3, 0)

        def __dlpack__(self, stream=None, max_version=None):
            cap = self.a.__dlpack__()
            from culoss import _dlpack
            ptr = _dlpack._api.PyCapsule_GetPointer(cap, b"dltensor")
            _dlpack.DLManagedTensor.from_address(ptr).dl_tensor.device.device_type = 3
            return cap

    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    err = _raises(culoss.UnsupportedDeviceError, culoss.Dice(), OnPinnedHost(x), t)
    assert "device type 3" in err.detail


def test_success_clears_the_last_error(rng):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    loss = culoss.Dice()  # kept: destroying a descriptor is a successful call too
    with pytest.raises(culoss.CulossError):
        loss(x, t[:, :2].copy())
    assert culoss.last_error()
    loss(x, t)
    assert culoss.last_error() == ""


def test_dropped_descriptors_do_not_clear_the_error(rng):
    import gc
    from culoss import _loss
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    loss, other = culoss.Dice(), culoss.Jaccard()
    with pytest.raises(culoss.CulossError):
        loss(x, t[:, :2].copy())
    del other  # its culoss_loss_destroy (a success) waits for the next call
    gc.collect()
    assert culoss.last_error()
    assert _loss._doomed
    loss(x, t)
    assert not _loss._doomed
