"""A second, independent way into libculoss for the tests: plain ctypes on NumPy buffers.

No DLPack capsules and nothing from the culoss package but the library's path: DLTensors are
built here from ``ndarray.ctypes``, parameters are set by their raw enum values from culoss.h.
The package's results are compared with what this layer gets from the same library.
"""

import ctypes
from ctypes import POINTER, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_uint8
from ctypes import c_uint16, c_uint64, c_void_p

import numpy as np

KIND = {"Dice": 1, "Jaccard": 2, "Tversky": 3, "FocalTversky": 4, "GeneralizedDice": 5,
        "BCE": 6, "CrossEntropy": 7, "Focal": 8, "Combo": 9, "MarginalCrossEntropy": 10,
        "LovaszHinge": 11, "LovaszSoftmax": 12, "Sum": 13, "MCC": 14, "HausdorffDT": 15,
        "Boundary": 16, "ClDice": 17, "TopKCrossEntropy": 18}
PARAM = {"activation": 1, "class_axis": 2, "reduction": 3, "ignore_index": 4, "smooth_nr": 5,
         "smooth_dr": 6, "squared_denominator": 7, "batch": 8, "include_background": 9,
         "class_weights": 10, "alpha": 11, "beta": 12, "gamma": 13, "weight_type": 14,
         "pos_weight": 15, "class_balance": 16, "label_smoothing": 17, "ce_ratio": 18,
         "per_image": 19, "classes": 20, "skip_empty": 21, "average": 22, "check_targets": 23,
         "soft_label": 24, "spacing": 25, "iterations": 26, "top_fraction": 27}
ENUM = {"none": None, "activation": {"none": 0, "sigmoid": 1, "softmax": 2},
        "reduction": {"mean": 0, "sum": 1, "none": 2},
        "weight_type": {"square": 0, "simple": 1, "uniform": 2},
        "class_balance": {"none": 0, "batch_frequency": 1}, "classes": {"all": 0, "present": 1},
        "average": {"macro": 0, "micro": 1}}
FLOATS = {"class_weights", "pos_weight"}
FLOAT = {"smooth_nr", "smooth_dr", "alpha", "beta", "gamma", "label_smoothing", "ce_ratio",
         "top_fraction"}


class _Dev(ctypes.Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class _DType(ctypes.Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("device", _Dev), ("ndim", c_int32), ("dtype", _DType),
                ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)),
                ("byte_offset", c_uint64)]


_CODES = {"f": 2, "i": 0, "u": 1, "b": 1}


def tensor(arr: np.ndarray):
    """(Tensor, keepalive) for a C-contiguous NumPy array (strides NULL)."""
    assert arr.flags.c_contiguous
    shape = (c_int64 * max(arr.ndim, 1))(*arr.shape)
    t = Tensor()
    t.data = arr.ctypes.data
    t.device = _Dev(1, 0)
    t.ndim = arr.ndim
    t.dtype = _DType(_CODES[arr.dtype.kind], arr.dtype.itemsize * 8, 1)
    t.shape = shape
    t.strides = None
    t.byte_offset = 0
    return t, (arr, shape)


class CApi:
    def __init__(self, path):
        lib = ctypes.CDLL(path)
        lib.culoss_loss_create.argtypes = [POINTER(c_void_p), c_int]
        lib.culoss_loss_destroy.argtypes = [c_void_p]
        lib.culoss_loss_set_int.argtypes = [c_void_p, c_int, c_int64]
        lib.culoss_loss_set_float.argtypes = [c_void_p, c_int, c_double]
        lib.culoss_loss_set_floats.argtypes = [c_void_p, c_int, POINTER(c_double), c_int64]
        lib.culoss_loss_get_int.argtypes = [c_void_p, c_int, POINTER(c_int64)]
        lib.culoss_loss_get_float.argtypes = [c_void_p, c_int, POINTER(c_double)]
        lib.culoss_loss_add_term.argtypes = [c_void_p, c_void_p, c_double]
        lib.culoss_workspace_size.argtypes = [c_void_p, POINTER(Tensor), POINTER(Tensor),
                                              POINTER(c_size_t)]
        lib.culoss_compute.argtypes = [c_void_p] + [POINTER(Tensor)] * 5 + [
            c_double, c_void_p, c_size_t, c_void_p]
        lib.culoss_last_error.restype = c_char_p
        lib.culoss_status_string.restype = c_char_p
        lib.culoss_status_string.argtypes = [c_int]
        self.lib = lib

    def check(self, status):
        if status != 0:
            raise RuntimeError("%s: %s" % (self.lib.culoss_status_string(status).decode(),
                                           self.lib.culoss_last_error().decode()))

    def create(self, kind, **params):
        h = c_void_p()
        self.check(self.lib.culoss_loss_create(ctypes.byref(h), KIND[kind]))
        for name, v in params.items():
            pid = PARAM[name]
            if name in FLOATS:
                arr = (c_double * len(v))(*v)
                self.check(self.lib.culoss_loss_set_floats(h, pid, arr, len(v)))
            elif name in FLOAT:
                self.check(self.lib.culoss_loss_set_float(h, pid, float(v)))
            else:
                if isinstance(v, str):
                    v = ENUM[name][v]
                self.check(self.lib.culoss_loss_set_int(h, pid, int(v)))
        return h

    def sum(self, terms, check_targets=True):
        h = c_void_p()
        self.check(self.lib.culoss_loss_create(ctypes.byref(h), KIND["Sum"]))
        for w, t in terms:
            self.check(self.lib.culoss_loss_add_term(h, t, float(w)))
        self.check(self.lib.culoss_loss_set_int(h, PARAM["check_targets"], int(check_targets)))
        return h

    def destroy(self, h):
        self.check(self.lib.culoss_loss_destroy(h))

    def compute(self, h, x, t, pw=None, out_shape=(), grad=True, grad_scale=1.0,
                value_dtype=None, grad_dtype=None):
        value_dtype = value_dtype or (np.float64 if x.dtype == np.float64 else np.float32)
        value = np.zeros(out_shape, dtype=value_dtype)
        g = np.zeros(x.shape, dtype=grad_dtype or x.dtype) if grad else None
        ti, k1 = tensor(x)
        tt, k2 = tensor(t)
        tv, k3 = tensor(value)
        tp, k4 = tensor(pw) if pw is not None else (None, None)
        tg, k5 = tensor(g) if grad else (None, None)
        self.check(self.lib.culoss_compute(
            h, ctypes.byref(ti), ctypes.byref(tt), ctypes.byref(tp) if tp is not None else None,
            ctypes.byref(tv), ctypes.byref(tg) if tg is not None else None, grad_scale, None, 0,
            None))
        return value, g

    def get_int(self, h, name):
        out = c_int64()
        self.check(self.lib.culoss_loss_get_int(h, PARAM[name], ctypes.byref(out)))
        return out.value

    def get_float(self, h, name):
        out = c_double()
        self.check(self.lib.culoss_loss_get_float(h, PARAM[name], ctypes.byref(out)))
        return out.value
