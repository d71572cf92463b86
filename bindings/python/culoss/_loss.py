"""Loss descriptors: one class per culoss kind, weighted sums, and the call that computes a
loss and its gradient on DLPack arrays."""

from __future__ import annotations

import ctypes
import inspect
import json
import math
import numbers
import operator
from contextlib import ExitStack
from ctypes import c_double, c_int64, c_size_t, c_void_p
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _dlpack
from ._dlpack import kDLBfloat, kDLBool, kDLCPU, kDLCUDA, kDLFloat, kDLInt, kDLUInt
from ._errors import error_for
from ._frameworks import dlpack_stream_arg, framework_of, refuse_meta
from ._lib import lib as _get_lib

# culoss_kind
DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, GENERALIZED_DICE = 1, 2, 3, 4, 5
BCE_KIND, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE = 6, 7, 8, 9, 10
LOVASZ_HINGE, LOVASZ_SOFTMAX, SUM = 11, 12, 13

REGION_KINDS = (DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, GENERALIZED_DICE)
ALL_KINDS = tuple(range(1, 13))

# name: (culoss_param value, type, enum values)
_ENUMS = {
    "activation": {"none": 0, "sigmoid": 1, "softmax": 2},
    "reduction": {"mean": 0, "sum": 1, "none": 2},
    "weight_type": {"square": 0, "simple": 1, "uniform": 2},
    "class_balance": {"none": 0, "batch_frequency": 1},
    "classes": {"all": 0, "present": 1},
    "average": {"macro": 0, "micro": 1},
}
PARAMS: Dict[str, Tuple[int, str]] = {
    "activation": (1, "enum"),
    "class_axis": (2, "int"),
    "reduction": (3, "enum"),
    "ignore_index": (4, "int"),
    "smooth_nr": (5, "float"),
    "smooth_dr": (6, "float"),
    "squared_denominator": (7, "flag"),
    "batch": (8, "flag"),
    "include_background": (9, "flag"),
    "class_weights": (10, "floats"),
    "alpha": (11, "float"),
    "beta": (12, "float"),
    "gamma": (13, "float"),
    "weight_type": (14, "enum"),
    "pos_weight": (15, "floats"),
    "class_balance": (16, "enum"),
    "label_smoothing": (17, "float"),
    "ce_ratio": (18, "float"),
    "per_image": (19, "flag"),
    "classes": (20, "enum"),
    "skip_empty": (21, "flag"),
    "average": (22, "enum"),
    "check_targets": (23, "flag"),
}

_REGION_COMMON = ("activation", "class_axis", "reduction", "ignore_index", "smooth_nr",
                  "smooth_dr", "batch", "include_background", "class_weights", "skip_empty",
                  "check_targets")
# Which parameters each kind takes (the C library's table, docs/reference.md).
KIND_PARAMS: Dict[int, Tuple[str, ...]] = {
    DICE: _REGION_COMMON + ("squared_denominator", "average"),
    JACCARD: _REGION_COMMON + ("squared_denominator", "average"),
    TVERSKY: _REGION_COMMON + ("alpha", "beta", "average"),
    FOCAL_TVERSKY: _REGION_COMMON + ("alpha", "beta", "gamma", "average"),
    GENERALIZED_DICE: _REGION_COMMON + ("weight_type",),
    BCE_KIND: ("activation", "class_axis", "reduction", "ignore_index", "class_weights",
               "pos_weight", "class_balance", "label_smoothing", "check_targets"),
    CROSS_ENTROPY: ("activation", "class_axis", "reduction", "ignore_index", "class_weights",
                    "label_smoothing", "check_targets"),
    FOCAL: ("activation", "class_axis", "reduction", "ignore_index", "class_weights", "alpha",
            "gamma", "check_targets"),
    COMBO: ("activation", "class_axis", "reduction", "ignore_index", "smooth_nr", "smooth_dr",
            "squared_denominator", "batch", "include_background", "class_weights", "alpha",
            "ce_ratio", "skip_empty", "average", "check_targets"),
    MARGINAL_CE: ("activation", "class_axis", "reduction", "ignore_index", "check_targets"),
    LOVASZ_HINGE: ("class_axis", "reduction", "ignore_index", "per_image", "check_targets"),
    LOVASZ_SOFTMAX: ("activation", "class_axis", "reduction", "ignore_index", "per_image",
                     "classes", "check_targets"),
}
# Activations each kind accepts.
_ACTIVATIONS: Dict[int, Tuple[str, ...]] = {
    BCE_KIND: ("none", "sigmoid"),
    COMBO: ("none", "sigmoid"),
    CROSS_ENTROPY: ("none", "softmax"),
    MARGINAL_CE: ("none", "softmax"),
    LOVASZ_SOFTMAX: ("none", "softmax"),
}

# dtype names -> DLPack (code, bits); booleans are read as uint8 0/1 masks
_DTYPE_CODES = {"float32": (kDLFloat, 32), "float64": (kDLFloat, 64), "float16": (kDLFloat, 16),
                "bfloat16": (kDLBfloat, 16), "uint8": (kDLUInt, 8), "bool": (kDLUInt, 8),
                "int32": (kDLInt, 32), "int64": (kDLInt, 64), "int8": (kDLInt, 8),
                "int16": (kDLInt, 16)}
# what check_shapes' placeholder tensors point at (aligned for every dtype; never read)
_PLACEHOLDER = (c_double * 1)()

_DTYPES = {(kDLFloat, 32): "float32", (kDLFloat, 64): "float64", (kDLFloat, 16): "float16",
           (kDLBfloat, 16): "bfloat16"}


# ----------------------------------------------------------------------------- C calls

def _check(status: int, function: str) -> None:
    if status != 0:
        lib = _get_lib()
        raise error_for(status, lib.status_name(status), lib.error_text(), function)


# ----------------------------------------------------------------------------- validation

def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError("%s must be a real number; got %s" % (name, type(value).__name__))
    v = float(value)
    if not math.isfinite(v):
        raise ValueError("%s must be finite; got %r" % (name, v))
    return v


def _validate(kind: int, name: str, value: Any) -> Any:
    """The value culoss receives for keyword ``name`` (ValueError/TypeError when bad)."""
    pid, ptype = PARAMS[name]
    if ptype == "enum":
        choices = _ENUMS[name]
        if name == "activation":
            allowed = _ACTIVATIONS.get(kind, ("none", "sigmoid", "softmax"))
        elif name == "reduction" and kind == COMBO:
            allowed = ("mean",)
        else:
            allowed = tuple(choices)
        if not isinstance(value, str):
            raise TypeError("%s must be a string, one of %s; got %s"
                            % (name, ", ".join(repr(a) for a in allowed), type(value).__name__))
        key = value.lower()
        if key not in allowed:
            raise ValueError("%s=%r is not valid for %s; expected one of %s"
                             % (name, value, _KIND_NAMES[kind],
                                ", ".join(repr(a) for a in allowed)))
        return choices[key]
    if ptype == "int":
        if isinstance(value, bool):
            raise TypeError("%s must be an int; got bool" % name)
        try:
            v = operator.index(value)
        except TypeError:
            raise TypeError("%s must be an int; got %s" % (name, type(value).__name__)) from None
        if name == "class_axis" and not -64 <= v <= 64:
            raise ValueError("class_axis must be an axis in [-64, 64]; got %d" % v)
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError("%s must fit in int64; got %d" % (name, v))
        return v
    if ptype == "flag":
        if isinstance(value, bool):
            return int(value)
        try:
            v = operator.index(value)
        except TypeError:
            raise TypeError("%s must be a bool; got %s" % (name, type(value).__name__)) from None
        if v not in (0, 1):
            raise ValueError("%s must be a bool (or 0/1); got %d" % (name, v))
        return v
    if ptype == "float":
        v = _real(name, value)
        if name == "alpha" and kind == FOCAL:
            ok, expected = v <= 1, "at most 1 (< 0 disables it)"
        elif name in ("alpha", "ce_ratio") and kind == COMBO or name == "ce_ratio":
            ok, expected = 0 <= v <= 1, "in [0, 1]"
        elif name == "label_smoothing":
            ok, expected = 0 <= v < 1, "in [0, 1)"
        else:
            ok, expected = v >= 0, ">= 0"
        if not ok:
            raise ValueError("%s must be %s for %s; got %r"
                             % (name, expected, _KIND_NAMES[kind], v))
        return v
    # floats
    if isinstance(value, (str, bytes)) or isinstance(value, numbers.Number):
        raise TypeError("%s must be a sequence of numbers (one per class); got %s"
                        % (name, type(value).__name__))
    try:
        items = list(value.tolist() if hasattr(value, "tolist") else value)
    except TypeError:
        raise TypeError("%s must be a sequence of numbers (one per class); got %s"
                        % (name, type(value).__name__)) from None
    if not items:
        raise ValueError("%s needs at least one value" % name)
    out = []
    for i, x in enumerate(items):
        v = _real("%s[%d]" % (name, i), x)
        if v < 0:
            raise ValueError("%s[%d] must be >= 0; got %r" % (name, i, v))
        out.append(v)
    return tuple(out)


# ----------------------------------------------------------------------------- descriptors

# Descriptors dropped by the garbage collector are destroyed at the next culoss call from
# Python, not in __del__: a collection can run between a failing C call and the reading of
# culoss_last_error(), and culoss_loss_destroy (a successful call) would clear the message.
_doomed: List[Tuple[Any, int]] = []


def _destroy_dropped() -> None:
    while _doomed:
        try:
            lib, ptr = _doomed.pop()
        except IndexError:  # another thread took the last one
            return
        lib.loss_destroy(c_void_p(ptr))


class _Handle:
    """Owns one culoss_loss."""

    __slots__ = ("ptr", "_lib")

    def __init__(self, kind: int):
        self._lib = _get_lib()
        _destroy_dropped()
        ptr = c_void_p()
        _check(self._lib.loss_create(ctypes.byref(ptr), kind), "culoss_loss_create")
        self.ptr = ptr

    def __del__(self):
        ptr = getattr(self, "ptr", None)
        if ptr is not None and ptr.value:
            _doomed.append((self._lib, ptr.value))
            self.ptr = None


class Loss:
    """A culoss loss descriptor.

    Call it as ``value, grad = loss(input, target, pixel_weight=None, grad=True,
    grad_scale=1.0)`` with arrays of any library that speaks DLPack. Combine losses with
    ``+`` and ``*`` (a fused :class:`Sum`). Descriptors are immutable; :meth:`replace` makes a
    changed copy.
    """

    kind: int = 0
    _handle: _Handle

    def __init__(self, **params: Any):
        if type(self) is Loss:
            raise TypeError("culoss.Loss is abstract: use Dice, BCE, ... or a Sum")
        allowed = KIND_PARAMS[self.kind]
        params = {k: v for k, v in params.items() if v is not None}  # None: culoss's default
        values: Dict[str, Any] = {}
        for name, value in params.items():
            if name not in allowed:
                hint = ""
                if name in PARAMS:
                    hint = " (it does not apply to this kind)"
                raise TypeError("%s() got an unexpected keyword argument %r%s; it takes %s"
                                % (type(self).__name__, name, hint, ", ".join(allowed)))
            values[name] = _validate(self.kind, name, value)
        self._params = dict(params)
        self._values = values
        h = _Handle(self.kind)
        lib = h._lib
        for name, v in values.items():
            pid, ptype = PARAMS[name]
            if ptype == "floats":
                arr = (c_double * len(v))(*v)
                _check(lib.loss_set_floats(h.ptr, pid, arr, len(v)), "culoss_loss_set_floats")
            elif ptype == "float":
                _check(lib.loss_set_float(h.ptr, pid, v), "culoss_loss_set_float")
            else:
                _check(lib.loss_set_int(h.ptr, pid, v), "culoss_loss_set_int")
        self._handle = h
        # what the output shape depends on, read back from the descriptor (C defaults included)
        self._resolved = {name: self.get(name) for name in
                          ("activation", "class_axis", "reduction", "batch", "average",
                           "per_image") if name in allowed}
        self._resolved.setdefault("activation", "none")  # Lovász hinge: logits

    # -- parameters
    @property
    def params(self) -> Dict[str, Any]:
        """The keyword arguments this loss was created with."""
        return dict(self._params)

    def get(self, name: str) -> Any:
        """A parameter's current value read back from the C descriptor (defaults included);
        enums come back as strings, flags as bools. List parameters are not readable."""
        if name not in PARAMS or name not in KIND_PARAMS.get(self.kind, ()):
            raise KeyError("%s has no parameter %r" % (type(self).__name__, name))
        pid, ptype = PARAMS[name]
        lib = self._handle._lib
        if ptype == "floats":
            v = self._values.get(name)
            return list(v) if v is not None else None
        if ptype == "float":
            out = c_double()
            _check(lib.loss_get_float(self._handle.ptr, pid, ctypes.byref(out)),
                   "culoss_loss_get_float")
            return out.value
        out64 = c_int64()
        _check(lib.loss_get_int(self._handle.ptr, pid, ctypes.byref(out64)), "culoss_loss_get_int")
        if ptype == "enum":
            inverse = {v: k for k, v in _ENUMS[name].items()}
            return inverse.get(out64.value, out64.value)
        if ptype == "flag":
            return bool(out64.value)
        return out64.value

    def replace(self, **changes: Any) -> "Loss":
        """A new loss of the same kind with some parameters changed."""
        params = dict(self._params)
        params.update(changes)
        return type(self)(**params)

    # -- (de)serialisation: used by pickling and by the torch custom op
    def spec(self) -> Dict[str, Any]:
        params = {}
        for k, v in self._params.items():
            if PARAMS[k][1] == "floats":
                v = list(self._values[k])
            elif PARAMS[k][1] == "flag":
                v = bool(self._values[k])
            elif PARAMS[k][1] == "float":
                v = float(v)
            elif PARAMS[k][1] == "int":
                v = int(v)
            params[k] = v
        return {"kind": type(self).__name__, "params": params}

    def __reduce__(self):
        return (from_spec, (self.spec(),))

    def __repr__(self) -> str:
        args = ", ".join("%s=%r" % kv for kv in self._params.items())
        return "culoss.%s(%s)" % (type(self).__name__, args)

    # -- sums
    def _terms(self) -> List[Tuple[float, "Loss"]]:
        return [(1.0, self)]

    def __add__(self, other: Any) -> "Sum":
        if not isinstance(other, Loss):
            return NotImplemented
        return Sum(self._terms() + other._terms())

    def __radd__(self, other: Any) -> "Loss":
        if isinstance(other, numbers.Number) and not isinstance(other, bool) and other == 0:
            return self  # sum([...]) starts from 0
        return NotImplemented

    def __mul__(self, k: Any) -> "Sum":
        if isinstance(k, Loss) or isinstance(k, bool) or not isinstance(k, numbers.Real):
            return NotImplemented
        k = _real("the weight of a sum term", k)
        return Sum([(k * w, t) for w, t in self._terms()])

    __rmul__ = __mul__

    def __truediv__(self, k: Any) -> "Sum":
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            return NotImplemented
        return self * (1.0 / _real("the divisor of a loss", k))

    def __neg__(self) -> "Sum":
        return self * -1.0

    def __sub__(self, other: Any) -> "Sum":
        if not isinstance(other, Loss):
            return NotImplemented
        return self + (-1.0) * other

    # -- shapes
    def output_axes(self, ndim: int) -> Optional[Tuple[int, ...]]:
        """The input axes the value's axes stand for (``()`` for MEAN/SUM), or None when the
        class axis is out of range (culoss then refuses the call and says why)."""
        r = self._resolved
        if r.get("reduction") != "none":
            return ()
        axis = r.get("class_axis", 1)
        axis = axis + ndim if axis < 0 else axis
        if ndim < 2 or not 1 <= axis < ndim:
            return None
        kind = self.kind
        if kind in REGION_KINDS:
            if kind == GENERALIZED_DICE or r.get("average") == "micro":  # one value per image
                return () if r.get("batch") else (0,)
            return (axis,) if r.get("batch") else (0, axis)
        if kind == BCE_KIND or (kind == FOCAL and r.get("activation") != "softmax"):
            return tuple(range(ndim))
        if kind == LOVASZ_HINGE:
            return (0, axis) if r.get("per_image") else (axis,)
        if kind == LOVASZ_SOFTMAX:
            return (0,) if r.get("per_image") else ()
        return tuple(a for a in range(ndim) if a != axis)  # CE, softmax focal, marginal CE

    def output_shape(self, input_shape: Sequence[int]) -> Tuple[int, ...]:
        """The shape of the value for an input of ``input_shape`` (``()`` for MEAN/SUM)."""
        shape = tuple(input_shape)
        axes = self.output_axes(len(shape))
        return tuple(shape[a] for a in axes) if axes else ()

    def separable(self) -> bool:
        """True when each value depends on the input elements of its own axes only, so that
        the gradient of sum(w * value) is the saved gradient times w broadcast: every kind
        but the per-class (MACRO) region losses with a softmax over the classes."""
        r = self._resolved
        if r.get("reduction") != "none":
            return True
        return not (self.kind in REGION_KINDS and self.kind != GENERALIZED_DICE and
                    r.get("average") != "micro" and r.get("activation") == "softmax")

    # -- compute
    def check_shapes(self, input_shape: Sequence[int], input_dtype: str,
                     target_shape: Sequence[int], target_dtype: str) -> None:
        """Raises what a call with arrays of these shapes and dtypes (names as in NumPy, e.g.
        ``"float32"``, ``"int64"``) would raise for them, without data: culoss's own validator
        runs on placeholder tensors that are never read. The ``culoss.torch`` modules use it
        where no culoss call runs (meta and fake tensors, ``torch.compile`` tracing)."""
        _destroy_dropped()
        shapes = [tuple(int(d) for d in input_shape), tuple(int(d) for d in target_shape)]
        tensors = []
        for shape, dtype in zip(shapes, (input_dtype, target_dtype)):
            code = _DTYPE_CODES.get(str(dtype))
            if code is None:
                raise TypeError("check_shapes: unknown dtype %r" % (dtype,))
            t = _dlpack.DLTensor()
            t.data = ctypes.addressof(_PLACEHOLDER)  # never read: validation only
            t.device = _dlpack.DLDevice(kDLCPU, 0)
            t.ndim = len(shape)
            t.dtype = _dlpack.DLDataType(code[0], code[1], 1)
            dims = (c_int64 * max(len(shape), 1))(*shape)
            t.shape = ctypes.cast(dims, ctypes.POINTER(c_int64))
            tensors.append((t, dims))
        out = c_size_t()
        _check(self._handle._lib.workspace_size(self._handle.ptr, ctypes.byref(tensors[0][0]),
                                                ctypes.byref(tensors[1][0]), ctypes.byref(out)),
               "culoss_workspace_size")

    def workspace_size(self, input: Any, target: Any) -> int:
        """Bytes of workspace culoss needs for these arrays (culoss_workspace_size)."""
        _refuse_meta(input, target)
        _destroy_dropped()
        fw = framework_of(input)
        with ExitStack() as es:
            device = _dlpack.device_of(input)
            es.enter_context(fw.device_context(device))
            stream = fw.current_stream(input, device) if device[0] == kDLCUDA else None
            s_arg = dlpack_stream_arg(device, stream)
            bi = es.enter_context(_dlpack.borrow(fw.prepare(input), s_arg))
            bt = es.enter_context(_dlpack.borrow(_prepare(target), _arg_stream(target, stream)))
            _patch_bool(bt)
            out = c_size_t()
            _check(self._handle._lib.workspace_size(self._handle.ptr, bi.pointer(), bt.pointer(),
                                                    ctypes.byref(out)), "culoss_workspace_size")
            return int(out.value)

    def __call__(self, input: Any, target: Any, pixel_weight: Any = None, grad: bool = True,
                 grad_scale: float = 1.0, *, grad_out: Any = None,
                 grad_dtype: Optional[str] = None, stream: Optional[int] = None):
        """Computes the loss and (with ``grad=True``) ``grad_scale`` times its gradient with
        respect to ``input``.

        Returns ``(value, grad)``: arrays of the input's library on the input's device.
        ``value`` is 0-d for MEAN/SUM reductions (float64 for float64 input, float32
        otherwise); ``grad`` has the input's shape and dtype (``grad_dtype="float32"`` asks
        for float32), or is None with ``grad=False``.

        ``grad_out``: an array to write the gradient into instead (it may be ``input`` itself:
        the gradient then overwrites the logits). ``stream``: a raw ``cudaStream_t`` to run on
        instead of the framework's current stream.
        """
        return self._run("compute", input, target, pixel_weight, None, grad, grad_scale,
                         grad_out, grad_dtype, stream)

    def stats_size(self, input: Any, target: Any) -> int:
        """The length of the statistics vector for these arrays (culoss_stats_size). It
        depends on the loss and the number of classes, never on the batch size N."""
        _refuse_meta(input, target)
        _destroy_dropped()
        fw = framework_of(input)
        with ExitStack() as es:
            device = _dlpack.device_of(input)
            es.enter_context(fw.device_context(device))
            stream = fw.current_stream(input, device) if device[0] == kDLCUDA else None
            s_arg = dlpack_stream_arg(device, stream)
            bi = es.enter_context(_dlpack.borrow(fw.prepare(input), s_arg))
            bt = es.enter_context(_dlpack.borrow(_prepare(target), _arg_stream(target, stream)))
            _patch_bool(bt)
            return self._stats_count(bi, bt)

    def _stats_count(self, bi: "_dlpack.Borrowed", bt: "_dlpack.Borrowed") -> int:
        out = c_int64()
        _check(self._handle._lib.stats_size(self._handle.ptr, bi.pointer(), bt.pointer(),
                                            ctypes.byref(out)), "culoss_stats_size")
        return int(out.value)

    def stats(self, input: Any, target: Any, pixel_weight: Any = None, *,
              stream: Optional[int] = None):
        """This shard's statistics (culoss_compute_stats), for data parallelism.

        Returns a float64 vector (of :meth:`stats_size` elements) of the input's library on
        the input's device. Sum the vectors of all shards of the global batch (split along N)
        element-wise, e.g. with an all-reduce, and pass the sum to :meth:`from_stats`.
        Pooled Lovász (``per_image=False``) raises :class:`NotSupportedError`.
        """
        value, _ = self._run("stats", input, target, pixel_weight, None, False, 1.0, None,
                             None, stream)
        return value

    def from_stats(self, input: Any, target: Any, stats: Any, pixel_weight: Any = None,
                   grad: bool = True, grad_scale: float = 1.0, *, grad_out: Any = None,
                   grad_dtype: Optional[str] = None, stream: Optional[int] = None):
        """The loss of the global batch and this shard's slice of its gradient
        (culoss_compute_from_stats).

        ``stats`` is the element-wise sum over all shards of :meth:`stats` (float64, on the
        input's device). Returns ``(value, grad)`` as :meth:`__call__` does: ``value`` is the
        loss of the whole global batch (for ``reduction="none"``, this shard's rows), ``grad``
        ``grad_scale`` times its gradient with respect to this shard's ``input``.
        """
        if stats is None:
            raise TypeError("stats must be an array (the summed statistics), not None")
        return self._run("from_stats", input, target, pixel_weight, stats, grad, grad_scale,
                         grad_out, grad_dtype, stream)

    def _run(self, mode: str, input: Any, target: Any, pixel_weight: Any, stats: Any,
             grad: bool, grad_scale: float, grad_out: Any, grad_dtype: Optional[str],
             stream: Optional[int]):
        """The one code path behind __call__, stats and from_stats (mode "compute", "stats"
        or "from_stats"): DLPack borrowing, streams, outputs and the workspace."""
        if not isinstance(grad, bool):
            raise TypeError("grad must be a bool; got %s" % type(grad).__name__)
        scale = _real("grad_scale", grad_scale)
        if grad_dtype not in (None, "float32"):
            raise ValueError("grad_dtype must be None (the input's dtype) or 'float32'; got %r"
                             % (grad_dtype,))
        if stream is not None:
            if isinstance(stream, bool):
                raise TypeError("stream must be an int (a cudaStream_t) or None")
            stream = operator.index(stream)
        user_stream = stream is not None
        _refuse_meta(input, target, pixel_weight, stats)
        _destroy_dropped()
        h = self._handle
        lib = h._lib
        fw = framework_of(input)
        inp = fw.prepare(input)
        device = _dlpack.device_of(inp)

        def call(bv, bg, ws_ptr=None, ws_bytes=0):
            bp_ptr = bp.pointer() if bp else None
            bv_ptr = bv.pointer() if bv is not None else None
            bg_ptr = bg.pointer() if bg is not None else None
            if mode == "stats":
                return lib.compute_stats(h.ptr, bi.pointer(), bt.pointer(), bp_ptr, bv_ptr,
                                         ws_ptr, ws_bytes, stream or None), "culoss_compute_stats"
            if mode == "from_stats":
                return lib.compute_from_stats(h.ptr, bi.pointer(), bt.pointer(), bp_ptr,
                                              bs.pointer(), bv_ptr, bg_ptr, scale, ws_ptr,
                                              ws_bytes, stream or None), \
                    "culoss_compute_from_stats"
            return lib.compute(h.ptr, bi.pointer(), bt.pointer(), bp_ptr, bv_ptr, bg_ptr, scale,
                               ws_ptr, ws_bytes, stream or None), "culoss_compute"

        with ExitStack() as es:
            es.enter_context(fw.device_context(device))
            if device[0] == kDLCUDA and stream is None:
                stream = fw.current_stream(inp, device)
            s_arg = dlpack_stream_arg(device, stream)
            bi = es.enter_context(_dlpack.borrow(inp, s_arg))
            bt = es.enter_context(_dlpack.borrow(_prepare(target), _arg_stream(target, stream)))
            _patch_bool(bt)
            bp = None
            if pixel_weight is not None:
                bp = es.enter_context(_dlpack.borrow(_prepare(pixel_weight),
                                                     _arg_stream(pixel_weight, stream)))
            bs = None
            if mode == "from_stats":
                bs = es.enter_context(_dlpack.borrow(_prepare(stats), _arg_stream(stats, stream)))
            in_dtype = _DTYPES.get(bi.dtype[:2]) if bi.dtype[2] == 1 else None
            if in_dtype is None or device[0] not in (kDLCPU, kDLCUDA):
                # no output can be made for such an input: let culoss say what is wrong with
                # it (it validates the inputs before it looks at any output)
                _check(*call(None, None))
                raise TypeError("input has an unsupported dtype or device: dtype (code, bits, "
                                "lanes) %r, device %r" % (bi.dtype, device))
            if mode == "stats":
                value = fw.empty((self._stats_count(bi, bt),), "float64", inp, device)
            else:
                value_dtype = "float64" if in_dtype == "float64" else "float32"
                value = fw.empty(self.output_shape(bi.shape), value_dtype, inp, device)
            bv = es.enter_context(_dlpack.borrow(value, s_arg, writable=True))
            g = None
            bg = None
            if mode == "stats":
                pass
            elif grad_out is not None:
                if not grad:
                    raise ValueError("grad_out needs grad=True")
                g = grad_out
                gfw = framework_of(grad_out)
                if grad_out is input:
                    if bi.read_only:
                        raise BufferError("grad_out is the input, which is read-only")
                    bg = bi  # the very same DLTensor: culoss overwrites the input in place
                else:
                    bg = es.enter_context(_dlpack.borrow(gfw.prepare(grad_out),
                                                         _arg_stream(grad_out, stream),
                                                         writable=True))
            elif grad:
                g = fw.empty(bi.shape, grad_dtype or in_dtype, inp, device)
                bg = es.enter_context(_dlpack.borrow(g, s_arg, writable=True))
            ws_keep, ws_ptr, ws_bytes = None, None, 0
            if device[0] == kDLCUDA and not user_stream:
                # from the framework's stream-ordered allocator, on the stream culoss runs on
                # (with a stream of the caller's own, culoss allocates stream-ordered itself);
                # one size serves culoss_compute and both statistics calls
                size = c_size_t()
                _check(lib.workspace_size(h.ptr, bi.pointer(), bt.pointer(), ctypes.byref(size)),
                       "culoss_workspace_size")
                ws_keep, ptr = fw.workspace(int(size.value), inp, device)
                if ws_keep is not None:
                    ws_ptr, ws_bytes = ptr, int(size.value)
            _check(*call(bv, bg, ws_ptr, ws_bytes))
            del ws_keep
        value = fw.finish(value, inp, device)
        if g is not None and grad_out is None:
            g = fw.finish(g, inp, device)
        return value, g


def _refuse_meta(input: Any, target: Any, pixel_weight: Any = None, stats: Any = None) -> None:
    for name, obj in (("input", input), ("target", target), ("pixel_weight", pixel_weight),
                      ("stats", stats)):
        refuse_meta(name, obj)


def _prepare(obj: Any) -> Any:
    if obj is None:
        raise TypeError("target must be an array, not None")
    return framework_of(obj).prepare(obj)


def _arg_stream(obj: Any, stream: Optional[int]) -> Optional[int]:
    return dlpack_stream_arg(_dlpack.device_of(obj), stream)


def _patch_bool(b: "_dlpack.Borrowed") -> None:
    # boolean masks are 1-byte 0/1 values: culoss reads them as uint8 (no copy)
    d = b.tensor.dtype
    if d.code == kDLBool and d.bits == 8 and d.lanes == 1:
        d.code = kDLUInt


class Sum(Loss):
    """A weighted sum of losses, computed by one fused culoss call (CULOSS_SUM).

    Build it with ``+`` and ``*`` (``culoss.Dice() + 0.5 * culoss.BCE()``) or from
    ``[(weight, loss), ...]``. Sums of sums are flattened. The sum checks its targets unless
    every term was created with ``check_targets=False``.
    """

    kind = SUM

    def __init__(self, terms: Sequence[Any], check_targets: Optional[bool] = None):
        flat: List[Tuple[float, Loss]] = []
        for item in terms:
            if isinstance(item, Loss):
                w, t = 1.0, item
            else:
                try:
                    w, t = item
                except (TypeError, ValueError):
                    raise TypeError("a Sum takes losses or (weight, loss) pairs; got %r"
                                    % (item,)) from None
                if not isinstance(t, Loss):
                    raise TypeError("a Sum term must be a culoss loss; got %s"
                                    % type(t).__name__)
                w = _real("the weight of a sum term", w)
            for w2, leaf in t._terms():
                flat.append((w * w2, leaf))
        if not flat:
            raise ValueError("a Sum needs at least one term")
        for w, leaf in flat:
            if leaf._resolved.get("reduction", "mean") == "none":
                raise ValueError("a term of a Sum must have reduction 'mean' or 'sum'; %r has "
                                 "'none'" % (leaf,))
        if check_targets is None:
            check_targets = any(leaf.get("check_targets") for _, leaf in flat)
        elif not isinstance(check_targets, bool):
            raise TypeError("check_targets must be a bool")
        self.terms = tuple(flat)
        self._check_targets = check_targets
        self._params = {}
        self._values = {}
        h = _Handle(SUM)
        for w, leaf in flat:
            _check(h._lib.loss_add_term(h.ptr, leaf._handle.ptr, w), "culoss_loss_add_term")
        _check(h._lib.loss_set_int(h.ptr, PARAMS["check_targets"][0], int(check_targets)),
               "culoss_loss_set_int")
        self._handle = h
        self._resolved = {"reduction": "mean", "activation": "none"}

    def _terms(self) -> List[Tuple[float, Loss]]:
        return list(self.terms)

    def get(self, name: str) -> Any:
        if name == "check_targets":
            return self._check_targets
        raise KeyError("a Sum has only check_targets; read the parameters of its terms")

    def replace(self, **changes: Any) -> "Sum":
        if set(changes) - {"check_targets"}:
            raise TypeError("a Sum takes only check_targets")
        return Sum(self.terms, check_targets=changes.get("check_targets", self._check_targets))

    def spec(self) -> Dict[str, Any]:
        return {"kind": "Sum", "check_targets": self._check_targets,
                "terms": [[w, t.spec()] for w, t in self.terms]}

    def output_axes(self, ndim: int) -> Optional[Tuple[int, ...]]:
        return ()

    def separable(self) -> bool:
        return True

    def __repr__(self) -> str:
        return " + ".join("%r * %r" % (w, t) for w, t in self.terms)


# ----------------------------------------------------------------------------- kinds

def _kind_class(name: str, kind: int, doc: str) -> type:
    def __init__(self, **params: Any) -> None:
        Loss.__init__(self, **params)

    params = [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, default=None)
              for p in KIND_PARAMS[kind]]
    # help() and editors show the keywords; None there means "culoss's default"
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params)
    __init__.__qualname__ = name + ".__init__"
    return type(name, (Loss,), {"kind": kind, "__doc__": doc, "__module__": "culoss",
                                "__init__": __init__, "__qualname__": name})


_DOCS = {
    "Dice": (DICE, "Soft Dice loss: 1 - (2I + s_nr) / (SP + ST + s_dr) per (image, class)."),
    "Jaccard": (JACCARD, "Soft Jaccard (IoU) loss: 1 - (I + s_nr) / (SP + ST - I + s_dr)."),
    "Tversky": (TVERSKY, "Tversky loss: 1 - (I + s_nr) / (I + alpha FP + beta FN + s_dr)."),
    "FocalTversky": (FOCAL_TVERSKY, "Focal Tversky loss: (1 - Tversky index)^gamma."),
    "GeneralizedDice": (GENERALIZED_DICE, "Generalized Dice loss (class weights from the "
                                          "target volumes, weight_type)."),
    "BCE": (BCE_KIND, "Binary cross-entropy with positive weights, batch-frequency class "
                      "balancing and label smoothing."),
    "CrossEntropy": (CROSS_ENTROPY, "Softmax cross-entropy (PyTorch semantics for class "
                                    "weights and ignore_index)."),
    "Focal": (FOCAL, "Focal loss: sigmoid (binary, alpha-balanced) or softmax."),
    "Combo": (COMBO, "Combo loss: ce_ratio * weighted BCE - (1 - ce_ratio) * Dice score."),
    "MarginalCrossEntropy": (MARGINAL_CE, "Cross-entropy that tolerates classes missing from "
                                          "an image's annotation (class 0 = background)."),
    "LovaszHinge": (LOVASZ_HINGE, "Lovasz hinge (binary, on logits), one problem per channel."),
    "LovaszSoftmax": (LOVASZ_SOFTMAX, "Lovasz-Softmax loss."),
}
_KIND_NAMES = {kind: name for name, (kind, _) in _DOCS.items()}
_KIND_NAMES[SUM] = "Sum"

KIND_CLASSES: Dict[str, type] = {}
for _name, (_kind, _doc) in _DOCS.items():
    KIND_CLASSES[_name] = _kind_class(
        _name, _kind, _doc + "\n\nKeyword arguments: " + ", ".join(KIND_PARAMS[_kind]) +
        " (docs/reference.md; enums as lower-case strings). Unset ones keep culoss's defaults.")
Sum.__module__ = "culoss"
Loss.__module__ = "culoss"


def from_spec(spec: Any) -> Loss:
    """Rebuilds a loss from :meth:`Loss.spec` (a dict, or its JSON text)."""
    if isinstance(spec, str):
        spec = json.loads(spec)
    kind = spec["kind"]
    if kind == "Sum":
        return Sum([(w, from_spec(t)) for w, t in spec["terms"]],
                   check_targets=spec.get("check_targets"))
    if kind not in KIND_CLASSES:
        raise ValueError("unknown culoss kind %r" % (kind,))
    return KIND_CLASSES[kind](**spec["params"])


def spec_json(loss: Loss) -> str:
    return json.dumps(loss.spec(), sort_keys=True)
