"""JAX adapter: culoss inside ``jax.jit`` and ``jax.grad``, through an XLA FFI custom call.

    import culoss, culoss.jax
    dice = culoss.jax.function(culoss.Dice(include_background=False))
    loss, grads = jax.value_and_grad(lambda p: dice(model(p, x), labels))(params)

:func:`function` turns any culoss loss (every kind, and sums) into ``f(input, target,
pixel_weight=None)``: a JAX function that returns the loss (0-d for ``reduction="mean"`` and
``"sum"``, the per-item array for ``"none"``) and has a reverse-mode derivative
(``jax.custom_vjp``) with respect to ``input``; ``jax.grad``, ``jax.value_and_grad`` and
``jax.jit`` work with it. No gradient flows to ``target`` or ``pixel_weight``.

How it runs: the call is the custom call ``culoss_compute`` (an XLA FFI handler in
``libculoss_jax.so``, built by ``pip install ./bindings/python`` when jax is importable at
build time) on the CPU and, in CUDA builds, on XLA's CUDA stream. XLA allocates the outputs and
the workspace (sized by ``culoss_workspace_size`` when the call is traced, for the platform it is
lowered for); nothing goes through the host or a Python callback.

Differentiation: when a gradient is wanted, the forward makes the one culoss call that computes
the value and the gradient together (culoss fuses them: the statistics pass, or the Lovász
sort, runs once) and keeps the gradient as the residual; the backward multiplies it by the
cotangent, broadcast over the axes a ``reduction="none"`` value stands for. Nothing is computed
twice. Without differentiation the call computes the value only. float16 inputs keep a float32
residual (small gradients survive a loss scale) and get the gradient in their own dtype;
bfloat16 inputs (float32's range) keep a bfloat16 residual, the float32 gradient rounded to
nearest even, scaled by the cotangent in float32.

``reduction="none"`` for a per-class region loss with a softmax (whose values each depend on
every class's logits) takes the softmax in JAX and gives culoss probabilities, as
``culoss.torch`` does, so that any cotangent is exact.

Descriptor: the loss's parameters travel in the custom call's attributes (``spec_ints``,
``spec_floats``): the lowered HLO is self-contained (it can be cached, serialised and run in
another process); the handler builds a ``culoss_loss`` from them once per distinct loss.

``jax.vmap``: a batch axis is folded into N (one culoss call on ``B*N`` images) when that gives
exactly the per-element results: ``reduction="none"`` with per-image values (N is an axis of the
value) that do not mix images, i.e. not ``batch=True`` region losses, not pooled Lovász, not BCE
with ``class_balance="batch_frequency"``. Otherwise (means and sums, and those) the batch runs as
a loop of calls (``lax.map``), which is exact but not faster than the loop itself.

Errors: shapes, dtypes and parameters are checked when the call is traced (a
:class:`culoss.CulossError` from Python). Invalid target values (``check_targets=True``, the
default) are found by the call itself: XLA raises ``jax.errors.JaxRuntimeError`` with culoss's
message (``CULOSS_ERROR_INVALID_TARGET in culoss_compute: ...``, naming the bad label). On CUDA
that check waits for the stream; with ``check_targets=False`` the call is the target
``culoss_compute_graph``, which neither allocates nor synchronises and may be captured in a CUDA
graph.
"""

from __future__ import annotations

import ctypes
import functools
import os
from ctypes import c_int64, c_size_t, c_void_p
from typing import Any, Callable, Optional, Tuple

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "culoss.jax needs JAX: `pip install jax` (or jax[cuda12] for GPUs), then reinstall culoss "
        "with `pip install ./bindings/python` so that its XLA FFI handler is built") from _exc

import numpy as np

from . import _dlpack, _lib, _loss
from ._dlpack import DLTensor, kDLBfloat, kDLCPU, kDLCUDA, kDLFloat, kDLInt, kDLUInt
from ._errors import CulossError
from ._loss import KIND_CLASSES, Loss, Sum, _check

__all__ = ["function", "TARGET", "TARGET_GRAPH", "HAVE_CUDA", "handler_path"]

#: The custom call target of losses that check their targets (CHECK_TARGETS=1).
TARGET = "culoss_compute"
#: The target of losses with ``check_targets=False``: CUDA-graph compatible.
TARGET_GRAPH = "culoss_compute_graph"

_HANDLER_NAME = "libculoss_jax.so"


def _load_handler() -> Tuple[ctypes.CDLL, str]:
    # libculoss first: the handler's DT_NEEDED names libculoss's soname, which the dynamic
    # loader resolves to the library already loaded (the package's, or CULOSS_LIBRARY's)
    core = _lib.lib()
    places = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(core.path)]
    for place in places:
        path = os.path.join(place, _HANDLER_NAME)
        if os.path.isfile(path):
            try:
                return ctypes.CDLL(path), path
            except OSError as exc:
                raise ImportError("culoss.jax could not load its XLA FFI handler %s: %s"
                                  % (path, exc)) from exc
    raise ImportError(
        "culoss.jax: the XLA FFI handler %s is not installed (looked in %s). It is built by "
        "`pip install ./bindings/python` when jax is importable at build time: `pip install "
        "jax`, then reinstall culoss (or pass -C cmake.define.CULOSS_JAX=ON to insist)."
        % (_HANDLER_NAME, ", ".join(places)))


_handler, _handler_path = _load_handler()
#: True when the handler has the CUDA target (a CUDA build of culoss).
HAVE_CUDA = hasattr(_handler, "culoss_jax_compute_cuda")


def handler_path() -> str:
    """The file of the XLA FFI handler in use."""
    return _handler_path


def _register() -> None:
    cpu = jax.ffi.pycapsule(_handler.culoss_jax_compute_cpu)
    jax.ffi.register_ffi_target(TARGET, cpu, platform="cpu")
    jax.ffi.register_ffi_target(TARGET_GRAPH, cpu, platform="cpu")
    if HAVE_CUDA:
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(_handler.culoss_jax_compute_cuda),
                                    platform="CUDA")
        graph = jax.ffi.pycapsule(_handler.culoss_jax_compute_cuda_graph)
        try:
            from jaxlib.xla_client import CustomCallTargetTraits
            traits = {"traits": CustomCallTargetTraits.COMMAND_BUFFER_COMPATIBLE}
        except ImportError:  # the handler's own metadata carries the trait too
            traits = {}
        jax.ffi.register_ffi_target(TARGET_GRAPH, graph, platform="CUDA", **traits)


_register()


# ----------------------------------------------------------------------------- the descriptor

_SPEC_FORMAT = 1  # src/jax_ffi.cc: kSpecFormat


def _encode(loss: Loss) -> Tuple[np.ndarray, np.ndarray]:
    """The ``spec_ints``/``spec_floats`` attributes for ``loss`` (their layout is described at
    the top of src/jax_ffi.cc): the very setter calls that built ``loss``'s own descriptor."""
    if isinstance(loss, Sum):
        terms, sum_check = loss.terms, int(bool(loss.get("check_targets")))
    else:
        terms, sum_check = ((1.0, loss),), -1
    ints = [_SPEC_FORMAT, len(terms), sum_check]
    floats = []
    for weight, term in terms:
        int_params, float_params, values = [], [], []
        for name, value in term._values.items():
            pid, ptype = _loss.PARAMS[name]
            if ptype == "floats":
                float_params += [pid, len(value)]
                values += [float(v) for v in value]
            elif ptype == "float":
                float_params += [pid, -1]
                values.append(float(value))
            else:
                int_params += [pid, int(value)]
        ints += [term.kind, len(int_params) // 2, len(float_params) // 2]
        ints += int_params + float_params
        floats += [float(weight)] + values
    return np.asarray(ints, dtype=np.int64), np.asarray(floats, dtype=np.float64)


def _dl_dtype(dtype: Any) -> Tuple[int, int]:
    """(DLDataTypeCode, bits) of a JAX/NumPy dtype; booleans are read as uint8, as the core
    package does. Anything else gets a code culoss refuses with a message naming the tensor."""
    dtype = np.dtype(dtype)
    if dtype == jnp.bfloat16:
        return kDLBfloat, 16
    code = {"f": kDLFloat, "i": kDLInt, "u": kDLUInt, "b": kDLUInt}.get(dtype.kind, 255)
    return code, dtype.itemsize * 8


# A non-NULL, well aligned address for the shape-only tensors of a workspace query: culoss
# validates and plans from shapes and dtypes there and never reads the data.
_NO_DATA = 1 << 12


class _ShapeOnly:
    """A DLTensor with a shape and dtype but no memory (for culoss_workspace_size)."""

    def __init__(self, aval: Any, device_type: int):
        self._shape = (c_int64 * max(len(aval.shape), 1))(*aval.shape)
        code, bits = _dl_dtype(aval.dtype)
        t = DLTensor()
        t.data = c_void_p(_NO_DATA)
        t.device = _dlpack.DLDevice(device_type, 0)
        t.ndim = len(aval.shape)
        t.dtype = _dlpack.DLDataType(code, bits, 1)
        t.shape = self._shape
        t.strides = None
        t.byte_offset = 0
        self.tensor = t


def _workspace_bytes(loss: Loss, x: Any, t: Any, device_type: int) -> int:
    """culoss_workspace_size for these shapes on a CPU or CUDA device. It validates the call
    as culoss_compute will (shapes, dtypes, parameters), so mistakes surface at trace time."""
    lib = loss._handle._lib
    xi, ti = _ShapeOnly(x, device_type), _ShapeOnly(t, device_type)
    out = c_size_t()
    _check(lib.workspace_size(loss._handle.ptr, ctypes.byref(xi.tensor), ctypes.byref(ti.tensor),
                              ctypes.byref(out)), "culoss_workspace_size")
    return int(out.value)


@functools.lru_cache(maxsize=None)
def _jax_sees_cuda() -> bool:
    try:
        return bool(jax.devices("cuda"))
    except RuntimeError:  # no CUDA backend in this jaxlib, or no device
        return False


# ----------------------------------------------------------------------------- the call

def _grad_dtype(dtype: Any) -> Any:
    """The residual's dtype (see Differentiation above)."""
    return jnp.float32 if dtype == jnp.float16 else dtype


def _value_dtype(dtype: Any) -> Any:
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


class _Plan:
    """What the calls of one :func:`function` share: the loss culoss runs, the softmax taken in
    JAX (if any), the attributes, the target name and the vmap rule's verdict."""

    def __init__(self, loss: Loss):
        self.softmax_axis: Optional[int] = None
        if not loss.separable():
            self.softmax_axis = loss.get("class_axis")
            loss = loss.replace(activation="none")
        self.loss = loss
        self.spec_ints, self.spec_floats = _encode(loss)
        self.target = TARGET if loss.get("check_targets") else TARGET_GRAPH
        self.compute = {False: self._batched(False), True: self._batched(True)}

    def foldable(self, ndim: int) -> bool:
        """True when a vmapped batch axis may be folded into N: each value belongs to one
        image and no value mixes images."""
        loss = self.loss
        if isinstance(loss, Sum) or loss.get("reduction") != "none":
            return False
        axes = loss.output_axes(ndim)
        if not axes or axes[0] != 0:  # batch=True region losses, pooled Lovász
            return False
        # BCE's batch-frequency balancing weighs every image by the whole batch's labels
        return not (isinstance(loss, KIND_CLASSES["BCE"]) and loss.get("class_balance") == "batch_frequency")

    def _ffi(self, ws: int, with_grad: bool, x: Any, t: Any, w: Any):
        """One ffi_call with a workspace of ``ws`` bytes: (value, grad or None)."""
        results = [jax.ShapeDtypeStruct(self.loss.output_shape(x.shape), _value_dtype(x.dtype)),
                   jax.ShapeDtypeStruct((max(ws, 1),), jnp.uint8)]
        if with_grad:
            results.append(jax.ShapeDtypeStruct(x.shape, _grad_dtype(x.dtype)))
        operands = (x, t) if w is None else (x, t, w)
        outs = jax.ffi.ffi_call(self.target, results, vmap_method="sequential")(
            *operands, spec_ints=self.spec_ints, spec_floats=self.spec_floats)
        return outs[0], (outs[2] if with_grad else None)

    def call(self, with_grad: bool, x: Any, t: Any, w: Any):
        """(value, grad or None), with a workspace sized for the platform it is lowered for."""
        sizes = {"cpu": _workspace_bytes(self.loss, x, t, kDLCPU)}  # raises on a bad call
        if HAVE_CUDA:
            try:
                sizes["cuda"] = _workspace_bytes(self.loss, x, t, kDLCUDA)
            except CulossError:
                # some plans size their CUDA buffers with the device's help: without a GPU
                # the call cannot run there anyway, and lowering for CUDA says so
                if _jax_sees_cuda():
                    raise
        branches = {platform: functools.partial(self._ffi, ws, with_grad)
                    for platform, ws in sizes.items()}
        return lax.platform_dependent(x, t, w, **branches)

    def _batched(self, with_grad: bool) -> Callable:
        call = functools.partial(self.call, with_grad)

        @jax.custom_batching.custom_vmap
        def compute(x, t, w):
            return call(x, t, w)

        out_batched = (True, True if with_grad else None)  # (value, grad or None)

        @compute.def_vmap
        def rule(axis_size, in_batched, x, t, w):
            args = (x, t, w)
            if not self.foldable(x.ndim - in_batched[0]):
                # a loop of calls: exact for every loss (ffi_call's "sequential" method)
                in_axes = tuple(0 if b else None for b in in_batched)
                return jax.vmap(call, in_axes=in_axes, axis_size=axis_size)(*args), out_batched
            # every argument gets the batch axis, then (B, N, ...) -> (B*N, ...)
            full = [a if (a is None or b) else jnp.broadcast_to(a, (axis_size,) + a.shape)
                    for a, b in zip(args, in_batched)]
            flat = [None if a is None else a.reshape((-1,) + a.shape[2:]) for a in full]
            value, grad = call(*flat)
            value = value.reshape((axis_size, -1) + value.shape[1:])
            if grad is not None:
                grad = grad.reshape((axis_size, -1) + grad.shape[1:])
            return (value, grad), out_batched

        return compute


def function(loss: Loss) -> Callable[..., Any]:
    """A JAX function ``f(input, target, pixel_weight=None)`` that returns the value of
    ``loss`` (any culoss kind or :class:`culoss.Sum`), differentiable with respect to
    ``input`` (see the module docstring). Shapes and dtypes are those of the core call:
    ``input`` float32, float64, float16 or bfloat16 with the classes on ``class_axis``;
    ``target`` dense (input's shape) or class indices (uint8, int32, int64; booleans are read
    as uint8); ``pixel_weight`` the input's shape without the class axis (cast to float32)."""
    if not isinstance(loss, Loss):
        raise TypeError("culoss.jax.function takes a culoss loss; got %s" % type(loss).__name__)
    plan = _Plan(loss)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
    def core(x, t, w, in_dtype):
        return plan.compute[False](x, t, w)[0]

    def fwd(x, t, w, in_dtype):
        value, grad = plan.compute[True](x, t, w)
        return value, grad

    def bwd(in_dtype, grad, ct):
        axes = plan.loss.output_axes(grad.ndim) or ()
        if axes:  # reduction="none": the cotangent of each value covers its axes
            view = [1] * grad.ndim
            for i, a in enumerate(axes):
                view[a] = ct.shape[i]
            ct = ct.reshape(view)
        compute = jnp.float32 if grad.dtype == jnp.bfloat16 else grad.dtype
        return (grad.astype(compute) * ct.astype(compute)).astype(in_dtype), None, None

    core.defvjp(fwd, bwd)

    def f(input: Any, target: Any, pixel_weight: Any = None) -> Any:
        x = jnp.asarray(input)
        t = jnp.asarray(target)
        w = None if pixel_weight is None else jnp.asarray(pixel_weight, dtype=jnp.float32)
        if plan.softmax_axis is not None:
            x = jax.nn.softmax(x, axis=plan.softmax_axis)
        return core(x, t, w, x.dtype)

    f.__doc__ = "culoss.jax.function(%r)(input, target, pixel_weight=None)" % (loss,)
    f.loss = loss  # type: ignore[attr-defined]
    return f
