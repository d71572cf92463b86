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

SUM = 13  # culoss_kind of a weighted sum; the other kinds' values are in _DOCS
_MAX_ENUM_VALUE = 255  # the kinds and parameters are looked up among 1..255



class _Registry:
    """culoss's tables of kinds and parameters, read once from the library (culoss_kind_name,
    culoss_param_get_bounds, ...): which keywords a kind takes, their types, enum values and
    accepted values. Nothing here is a copy of the C tables."""

    def __init__(self, lib: Any):
        self._lib = lib
        self.params: Dict[str, Tuple[int, str]] = {}  # name: (culoss_param, type)
        self.enums: Dict[str, Dict[str, int]] = {}    # name: {value name: value}
        self.kind_params: Dict[int, Tuple[str, ...]] = {}
        # Every value the C enums could hold (an int); the library names the ones it has.
        names = {}
        for pid in range(1, _MAX_ENUM_VALUE + 1):
            if lib.param_name(pid):
                names[pid] = lib.param_name(pid).decode("ascii")[len("CULOSS_PARAM_"):].lower()
        for kind in range(1, _MAX_ENUM_VALUE + 1):
            if not lib.kind_name(kind):
                continue
            taken = [p for p in names if lib.param_applies(kind, p)]
            self.kind_params[kind] = tuple(names[p] for p in taken)
            for p in taken:
                if names[p] not in self.params:
                    self.params[names[p]] = (p, self._type_of(kind, p, names[p]))

    def _type_of(self, kind: int, pid: int, name: str) -> str:
        ctype = ctypes.c_int()
        _check(self._lib.param_get_type(pid, ctypes.byref(ctype)), "culoss_param_get_type")
        if ctype.value != 0:  # CULOSS_TYPE_FLOAT, CULOSS_TYPE_FLOATS
            return "float" if ctype.value == 1 else "floats"
        lower, upper, _ = self.bounds(kind, pid)
        values = {}
        for v in range(int(lower), int(upper) + 1) if math.isfinite(lower + upper) else ():
            vname = self._lib.param_value_name(pid, v)
            if vname:
                values[vname.decode("ascii").lower()] = v
        if values:
            self.enums[name] = values
            return "enum"
        return "flag" if (lower, upper) == (0, 1) else "int"

    def bounds(self, kind: int, pid: int) -> Tuple[float, float, bool]:
        lower, upper, is_open = c_double(), c_double(), ctypes.c_int()
        _check(self._lib.param_get_bounds(kind, pid, ctypes.byref(lower), ctypes.byref(upper),
                                          ctypes.byref(is_open)), "culoss_param_get_bounds")
        return lower.value, upper.value, bool(is_open.value)

    def accepts(self, kind: int, pid: int, value: float) -> bool:
        return bool(self._lib.param_accepts(kind, pid, value))

    def expected(self, kind: int, pid: int) -> str:
        """The accepted values as words: ">= 0", "at most 1", "in [0, 1)", "in (0, 1]"."""
        lower, upper, is_open = self.bounds(kind, pid)
        # a lower bound the setter refuses is open; the library reports an open bound at 0 as the
        # smallest positive double
        lower_open = math.isfinite(lower) and not self.accepts(kind, pid, lower)
        if 0.0 < lower < 1e-300:
            lower, lower_open = 0.0, True
        if upper == math.inf:
            return "%s %g" % (">" if lower_open else ">=", lower)
        if lower == -math.inf:
            return "at most %g" % upper
        return "in %s%g, %g%s" % ("(" if lower_open else "[", lower, upper,
                                  ")" if is_open else "]")


_registry_cache: List[_Registry] = []


def _registry() -> _Registry:
    if not _registry_cache:
        _registry_cache.append(_Registry(_get_lib()))
    return _registry_cache[0]


def __getattr__(name: str) -> Any:
    # The tables as module attributes, read from the library on first use (importing culoss
    # does not load it).
    if name == "PARAMS":
        return _registry().params
    if name == "KIND_PARAMS":
        return _registry().kind_params
    if name == "_ENUMS":
        return _registry().enums
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


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
    reg = _registry()
    pid, ptype = reg.params[name]
    if ptype == "enum":
        choices = reg.enums[name]
        allowed = tuple(k for k, v in choices.items() if reg.accepts(kind, pid, v))
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
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError("%s must fit in int64; got %d" % (name, v))
        if not reg.accepts(kind, pid, float(v)):
            raise ValueError("%s must be %s for %s; got %d"
                             % (name, reg.expected(kind, pid), _KIND_NAMES[kind], v))
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
        if not reg.accepts(kind, pid, v):
            raise ValueError("%s must be %s for %s; got %r"
                             % (name, reg.expected(kind, pid), _KIND_NAMES[kind], v))
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
        if not reg.accepts(kind, pid, v):
            raise ValueError("%s[%d] must be %s; got %r" % (name, i, reg.expected(kind, pid), v))
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
        reg = _registry()
        allowed = reg.kind_params[self.kind]
        params = {k: v for k, v in params.items() if v is not None}  # None: culoss's default
        values: Dict[str, Any] = {}
        for name, value in params.items():
            if name not in allowed:
                hint = ""
                if name in reg.params:
                    hint = " (it does not apply to this kind)"
                raise TypeError("%s() got an unexpected keyword argument %r%s; it takes %s"
                                % (type(self).__name__, name, hint, ", ".join(allowed)))
            values[name] = _validate(self.kind, name, value)
        self._params = dict(params)
        self._values = values
        h = _Handle(self.kind)
        lib = h._lib
        for name, v in values.items():
            pid, ptype = reg.params[name]
            if ptype == "floats":
                arr = (c_double * len(v))(*v)
                _check(lib.loss_set_floats(h.ptr, pid, arr, len(v)), "culoss_loss_set_floats")
            elif ptype == "float":
                _check(lib.loss_set_float(h.ptr, pid, v), "culoss_loss_set_float")
            else:
                _check(lib.loss_set_int(h.ptr, pid, v), "culoss_loss_set_int")
        self._handle = h
        # what the Sum and separable() look at, read back from the descriptor (C defaults
        # included)
        self._resolved = {name: self.get(name) for name in
                          ("activation", "class_axis", "reduction") if name in allowed}
        self._resolved.setdefault("activation", "none")  # Lovász hinge: logits

    # -- parameters
    @property
    def params(self) -> Dict[str, Any]:
        """The keyword arguments this loss was created with."""
        return dict(self._params)

    def get(self, name: str) -> Any:
        """A parameter's current value read back from the C descriptor (defaults included);
        enums come back as strings, flags as bools. List parameters are not readable."""
        reg = _registry()
        if name not in reg.params or name not in reg.kind_params.get(self.kind, ()):
            raise KeyError("%s has no parameter %r" % (type(self).__name__, name))
        pid, ptype = reg.params[name]
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
            inverse = {v: k for k, v in reg.enums[name].items()}
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
        types = _registry().params
        for k, v in self._params.items():
            if types[k][1] == "floats":
                v = list(self._values[k])
            elif types[k][1] == "flag":
                v = bool(self._values[k])
            elif types[k][1] == "float":
                v = float(v)
            elif types[k][1] == "int":
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
        cache = self.__dict__.setdefault("_axes_by_ndim", {})  # a loss never changes
        if ndim not in cache:
            cache[ndim] = self._output_axes(ndim)
        return cache[ndim]

    def _output_axes(self, ndim: int) -> Optional[Tuple[int, ...]]:
        axes = (c_int64 * max(ndim, 1))()
        count = c_int64()
        status = self._handle._lib.loss_output_axes(self._handle.ptr, ndim, axes,
                                                    ctypes.byref(count))
        if status != 0:
            return None
        return tuple(axes[i] for i in range(count.value))

    def output_shape(self, input_shape: Sequence[int]) -> Tuple[int, ...]:
        """The shape of the value for an input of ``input_shape`` (``()`` for MEAN/SUM)."""
        shape = tuple(input_shape)
        axes = self.output_axes(len(shape))
        return tuple(shape[a] for a in axes) if axes else ()

    def separable(self) -> bool:
        """True when each value depends on the input elements of its own axes only, so that
        the gradient of sum(w * value) is the saved gradient times w broadcast: every loss but
        those with a softmax over the classes whose values run along the class axis (the
        per-class, MACRO region losses)."""
        r = self._resolved
        if r.get("reduction") != "none" or r.get("activation") != "softmax":
            return True
        axis = r.get("class_axis", 1)
        ndim = axis + 1 if axis > 0 else 1 - axis  # the smallest input it names an axis of
        axes = self.output_axes(max(ndim, 2))
        return axes is None or (axis if axis > 0 else 1) not in axes

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

        # the borrowed tensors, released (their producers' deleters run) however the call ends
        held: List[_dlpack.Borrowed] = []

        def take(obj: Any, s: Optional[int], writable: bool = False) -> _dlpack.Borrowed:
            b = _dlpack.take(obj, s, writable)
            held.append(b)
            return b

        cuda = device[0] == kDLCUDA
        ctx = fw.device_context(device) if cuda else None
        if ctx is not None:
            ctx.__enter__()
        try:
            if cuda and stream is None:
                stream = fw.current_stream(inp, device)
            s_arg = dlpack_stream_arg(device, stream)
            bi = take(inp, s_arg)
            bt = take(_prepare(target), _arg_stream(target, stream))
            _patch_bool(bt)
            bp = None
            if pixel_weight is not None:
                bp = take(_prepare(pixel_weight), _arg_stream(pixel_weight, stream))
            bs = None
            if mode == "from_stats":
                bs = take(_prepare(stats), _arg_stream(stats, stream))
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
                in_shape = bi.shape
                value = fw.empty(self.output_shape(in_shape), value_dtype, inp, device)
            bv = take(value, s_arg, writable=True)
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
                    bg = take(gfw.prepare(grad_out), _arg_stream(grad_out, stream),
                              writable=True)
            elif grad:
                g = fw.empty(in_shape, grad_dtype or in_dtype, inp, device)
                bg = take(g, s_arg, writable=True)
            ws_keep, ws_ptr, ws_bytes = None, None, 0
            if cuda and not user_stream:
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
        finally:
            for b in reversed(held):
                b.release()
            if ctx is not None:
                ctx.__exit__(None, None, None)
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
    if stream is None:  # a CPU call: no stream argument whatever the device
        return None
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
        _check(h._lib.loss_set_int(h.ptr, _registry().params["check_targets"][0],
                                   int(check_targets)),
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

    def __repr__(self) -> str:
        return " + ".join("%r * %r" % (w, t) for w, t in self.terms)


# ----------------------------------------------------------------------------- kinds

class _KindClass(type):
    """The class of the loss classes: their keywords (signature and docstring) come from the
    library's registry when first asked for, so that importing culoss does not load it."""

    @property
    def __signature__(cls) -> inspect.Signature:
        return inspect.Signature([inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY,
                                                    default=None)
                                  for p in _registry().kind_params[cls.kind]])

    @property
    def __doc__(cls) -> str:  # type: ignore[override]
        return (cls._summary + "\n\nKeyword arguments: " +
                ", ".join(_registry().kind_params[cls.kind]) +
                " (docs/reference.md; enums as lower-case strings). Unset ones keep culoss's "
                "defaults.")


def _kind_class(name: str, kind: int, doc: str) -> type:
    # help() and editors show the keywords; None there means "culoss's default"
    return _KindClass(name, (Loss,), {"kind": kind, "_summary": doc, "__module__": "culoss",
                                      "__qualname__": name})


# Python class: (culoss_kind value, frozen; summary).
_DOCS = {
    "Dice": (1, "Soft Dice loss: 1 - (2I + s_nr) / (SP + ST + s_dr) per (image, class)."),
    "Jaccard": (2, "Soft Jaccard (IoU) loss: 1 - (I + s_nr) / (SP + ST - I + s_dr)."),
    "Tversky": (3, "Tversky loss: 1 - (I + s_nr) / (I + alpha FP + beta FN + s_dr)."),
    "FocalTversky": (4, "Focal Tversky loss: (1 - Tversky index)^gamma."),
    "GeneralizedDice": (5, "Generalized Dice loss (class weights from the target volumes, "
                           "weight_type)."),
    "BCE": (6, "Binary cross-entropy with positive weights, batch-frequency class balancing and "
               "label smoothing."),
    "CrossEntropy": (7, "Softmax cross-entropy (PyTorch semantics for class weights and "
                        "ignore_index)."),
    "Focal": (8, "Focal loss: sigmoid (binary, alpha-balanced) or softmax."),
    "Combo": (9, "Combo loss: ce_ratio * weighted BCE - (1 - ce_ratio) * Dice score."),
    "MarginalCrossEntropy": (10, "Cross-entropy that tolerates classes missing from an image's "
                                 "annotation (class 0 = background)."),
    "LovaszHinge": (11, "Lovasz hinge (binary, on logits), one problem per channel."),
    "LovaszSoftmax": (12, "Lovasz-Softmax loss."),
    "MCC": (14, "Matthews correlation coefficient loss: 1 - MCC of the soft TP, TN, FP, FN "
                "(each + s_dr) per (image, class)."),
    "TopKCrossEntropy": (18, "Cross-entropy of the top_fraction of the pixels with the largest "
                             "losses over the batch (nnU-Net's TopKLoss)."),
    "HausdorffDT": (15, "Hausdorff distance-transform loss: mean of (p - t)^2 (f_P^alpha + "
                        "f_T^alpha), f the exact distance maps of the thresholded masks."),
    "Boundary": (16, "Boundary loss: mean of p * phi, phi the target's signed distance map."),
    "ClDice": (17, "Soft clDice: 1 - harmonic mean of the topology precision and sensitivity "
                   "of soft skeletons (2-D and 3-D)."),
}
_KIND_NAMES = {kind: name for name, (kind, _) in _DOCS.items()}
_KIND_NAMES[SUM] = "Sum"

KIND_CLASSES: Dict[str, type] = {name: _kind_class(name, kind, doc)
                                 for name, (kind, doc) in _DOCS.items()}
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
