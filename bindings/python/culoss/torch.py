"""PyTorch adapter: an ``nn.Module`` per culoss kind, with autograd.

    import culoss.torch
    criterion = culoss.torch.DiceLoss(include_background=False)
    loss = criterion(logits, labels)      # one culoss call: value and gradient
    loss.backward()                       # scales the saved gradient by grad_output

The forward runs a single culoss call that computes the value and the gradient with respect to
the input; the backward multiplies that saved gradient by ``grad_output`` (broadcast over the
axes a ``reduction="none"`` value stands for). The call is the custom operator
``torch.ops.culoss.compute`` (``torch.library.custom_op``, PyTorch >= 2.4), so ``torch.compile``
keeps it as one opaque node; eager calls on plain tensors (and older PyTorch) run the same
forward and backward as a ``torch.autograd.Function``, which skips the operator's dispatch
overhead.

Mixed precision: float16/bfloat16 inputs are read as they are (value in float32). A float16
input's saved gradient is kept in float32, so that small gradients do not underflow float16's
range before the loss scale of a ``GradScaler`` reaches them, and is cast in the backward. A
bfloat16 input's gradient is computed in bfloat16 (its range is float32's): the float32
gradient rounded to nearest even, the same bits its cast gave, with half the memory and no
cast in the backward; a ``grad_output`` other than 1 multiplies it in float32.

Threads: a CPU call runs on ``torch.get_num_threads()`` threads (the forward sets
:func:`culoss.set_num_threads` to it), so culoss and PyTorch share one setting and never
oversubscribe the cores; change it with ``torch.set_num_threads``. Every count gives bitwise the
same result.

No gradient flows to ``target`` or ``pixel_weight``. Non-contiguous inputs are made
contiguous (a copy) here, unlike the core ``culoss`` API, which refuses them.

Data parallelism: with ``process_group=`` (a ``torch.distributed`` group) or
``distributed=True`` (the default group) each rank passes its shard of the global batch (split
along N); the forward computes the shard's statistics (``Loss.stats``), sums them with
``torch.distributed.all_reduce``, and computes the loss of the whole global batch and the
shard's slice of its gradient (``Loss.from_stats``, the custom operator
``torch.ops.culoss.compute_from_stats``). Every rank must call the forward (it is a
collective).
"""

import inspect
import threading
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from . import _loss
from ._lib import lib as _get_lib
from ._loss import Loss

__all__ = [
    "compute", "LossModule", "DiceLoss", "JaccardLoss", "TverskyLoss", "FocalTverskyLoss",
    "GeneralizedDiceLoss", "BCELoss", "CrossEntropyLoss", "FocalLoss", "ComboLoss",
    "MarginalCrossEntropyLoss", "LovaszHingeLoss", "LovaszSoftmaxLoss", "HAVE_CUSTOM_OP",
    "MCCLoss",
    "TopKCrossEntropyLoss",
    "HausdorffDTLoss", "BoundaryLoss", "ClDiceLoss",
]

_cache: Dict[str, Loss] = {}
_cache_lock = threading.Lock()


def _loss_for(spec: str) -> Loss:
    """The descriptor for a spec string (the custom op's only non-tensor argument)."""
    loss = _cache.get(spec)
    if loss is None:
        with _cache_lock:
            loss = _cache.get(spec)
            if loss is None:
                loss = _loss.from_spec(spec)
                _cache[spec] = loss
    return loss


def _grad_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the gradient the forward computes and saves (see Mixed precision above)."""
    return torch.float32 if dtype == torch.float16 else dtype


def _value_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# Inputs of at most this many elements are one chunk of work (the library's passes cut at least
# 2^14 elements to a chunk), which the calling thread runs alone.
_ONE_CHUNK = 1 << 14


def _match_torch_threads(input: Tensor) -> None:
    """CPU calls use PyTorch's intra-op thread count (one setting, no oversubscription).
    Called first: setting the count also wakes culoss's idle threads, which are then up by the
    time the call, after the argument handling, needs them. A call of one chunk needs no other
    thread: it sets the count only when the count differs (waking threads costs more than such
    a call's work)."""
    if input.device.type == "cpu":
        n = torch.get_num_threads()
        lib = _get_lib()
        if input.numel() > _ONE_CHUNK or lib.get_num_threads() != n:
            lib.set_num_threads(n)


def _forward_impl(input: Tensor, target: Tensor, pixel_weight: Optional[Tensor], spec: str,
                  need_grad: bool, stats: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    loss = _loss_for(spec)
    _match_torch_threads(input)
    gd = "float32" if _grad_dtype(input.dtype) != input.dtype else None
    if stats is None:
        value, grad = loss(input, target, pixel_weight, grad=need_grad, grad_dtype=gd)
    else:
        value, grad = loss.from_stats(input, target, stats, pixel_weight, grad=need_grad,
                                      grad_dtype=gd)
    if grad is None:
        grad = input.new_empty((0,), dtype=_grad_dtype(input.dtype))
    return value, grad


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _check_shapes(loss: Loss, input: Tensor, target: Tensor) -> None:
    """Raises what culoss would raise for these shapes and dtypes (no data is read): meta and
    fake tensors get the same refusals as real ones. Symbolic shapes are left to the call."""
    shapes = tuple(input.shape) + tuple(target.shape)
    if all(isinstance(d, int) for d in shapes):
        loss.check_shapes(input.shape, _dtype_name(input.dtype), target.shape,
                          _dtype_name(target.dtype))


def _forward_fake(input: Tensor, target: Tensor, pixel_weight: Optional[Tensor], spec: str,
                  need_grad: bool) -> Tuple[Tensor, Tensor]:
    loss = _loss_for(spec)
    _check_shapes(loss, input, target)
    value = input.new_empty(loss.output_shape(input.shape), dtype=_value_dtype(input.dtype))
    if need_grad:
        grad = input.new_empty(input.shape, dtype=_grad_dtype(input.dtype))
    else:
        grad = input.new_empty((0,), dtype=_grad_dtype(input.dtype))
    return value, grad


# (spec, ndim) -> the input axes of the value (a library query, asked once per key)
_axes_cache: Dict[Tuple[str, int], Tuple[int, ...]] = {}


def _scale(grad: Tensor, grad_value: Tensor, spec: str, input_dtype: torch.dtype) -> Tensor:
    """grad_input = saved gradient x grad_output, broadcast over the value's axes."""
    key = (spec, grad.dim())
    axes = _axes_cache.get(key)
    if axes is None:
        axes = _axes_cache[key] = _loss_for(spec).output_axes(grad.dim()) or ()
    if axes:
        view = [1] * grad.dim()
        for i, a in enumerate(axes):
            view[a] = grad_value.shape[i]
        grad_value = grad_value.reshape(view)
    # a bfloat16 gradient is scaled in float32 (the scale is not rounded to bfloat16 first)
    compute = torch.float32 if grad.dtype == torch.bfloat16 else grad.dtype
    return (grad.to(compute) * grad_value.to(compute)).to(input_dtype)


try:
    _custom_op = torch.library.custom_op  # PyTorch >= 2.4
except AttributeError:  # pragma: no cover - old PyTorch
    _custom_op = None

HAVE_CUSTOM_OP = _custom_op is not None

if HAVE_CUSTOM_OP:
    @torch.library.custom_op("culoss::compute", mutates_args=())
    def _compute_op(input: Tensor, target: Tensor, pixel_weight: Optional[Tensor], spec: str,
                    need_grad: bool) -> Tuple[Tensor, Tensor]:
        return _forward_impl(input, target, pixel_weight, spec, need_grad)

    @_compute_op.register_fake
    def _(input, target, pixel_weight, spec, need_grad):
        return _forward_fake(input, target, pixel_weight, spec, need_grad)

    @torch.library.custom_op("culoss::compute_from_stats", mutates_args=())
    def _compute_from_stats_op(input: Tensor, target: Tensor, pixel_weight: Optional[Tensor],
                               stats: Tensor, spec: str,
                               need_grad: bool) -> Tuple[Tensor, Tensor]:
        return _forward_impl(input, target, pixel_weight, spec, need_grad, stats)

    @_compute_from_stats_op.register_fake
    def _(input, target, pixel_weight, stats, spec, need_grad):
        return _forward_fake(input, target, pixel_weight, spec, need_grad)

    def _setup_context(ctx, inputs, output):
        # (input, target, pixel_weight[, stats], spec, need_grad)
        input, spec, need_grad = inputs[0], inputs[-2], inputs[-1]
        ctx.n_inputs = len(inputs)
        _value, grad = output
        ctx.spec = spec
        ctx.need_grad = need_grad
        ctx.input_dtype = input.dtype
        ctx.save_for_backward(grad)

    def _backward(ctx, grad_value, _grad_grad):
        if not ctx.need_grad:
            raise RuntimeError("culoss: this forward ran without a gradient (the input did not "
                               "require grad, or grad mode was off)")
        (grad,) = ctx.saved_tensors
        return ((_scale(grad, grad_value, ctx.spec, ctx.input_dtype),) +
                (None,) * (ctx.n_inputs - 1))

    torch.library.register_autograd("culoss::compute", _backward, setup_context=_setup_context)
    torch.library.register_autograd("culoss::compute_from_stats", _backward,
                                    setup_context=_setup_context)

    def _apply_op(input, target, pixel_weight, spec, need_grad, stats=None):
        if stats is None:
            value, _grad = _compute_op(input, target, pixel_weight, spec, need_grad)
        else:
            value, _grad = _compute_from_stats_op(input, target, pixel_weight, stats, spec,
                                                  need_grad)
        return value


class _Function(torch.autograd.Function):
    """The same forward and backward as the custom operator, without the operator's dispatch:
    what an eager call runs (its Python overhead is a fraction of the operator's, which
    matters for small CPU problems). Older PyTorch runs it always."""

    @staticmethod
    def forward(ctx, input, target, pixel_weight, spec, need_grad, stats=None):
        value, grad = _forward_impl(input, target, pixel_weight, spec, need_grad, stats)
        ctx.spec = spec
        ctx.need_grad = need_grad
        ctx.input_dtype = input.dtype
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, grad_value):
        if not ctx.need_grad:
            raise RuntimeError("culoss: this forward ran without a gradient (the input did not "
                               "require grad, or grad mode was off)")
        (grad,) = ctx.saved_tensors
        if _unit_scale(grad, grad_value, ctx.input_dtype):
            # loss.backward() of a CPU loss: grad x 1 is grad, bit for bit; handing the saved
            # gradient on saves a pass and an allocation of the input's size (autograd copies
            # it when the graph is kept for another backward)
            return (grad, None, None, None, None, None)
        return (_scale(grad, grad_value, ctx.spec, ctx.input_dtype),
                None, None, None, None, None)


def _unit_scale(grad: Tensor, grad_value: Tensor, input_dtype: torch.dtype) -> bool:
    """grad_output is a CPU scalar 1 that needs no graph, and the saved gradient has the
    input's dtype: the gradient is the saved one as it is (no device sync on the CPU)."""
    return (grad_value.dim() == 0 and grad_value.device.type == "cpu"
            and not grad_value.requires_grad and grad.dtype == input_dtype
            and grad_value.item() == 1.0)


def _eager(input: Tensor) -> bool:
    """A plain tensor outside torch.compile and tracing: no need for the custom operator."""
    if type(input) is not torch.Tensor or input.device.type == "meta":
        return False
    compiling = getattr(torch.compiler, "is_compiling", None)
    return not (compiling is not None and compiling()) and not torch.jit.is_tracing()


def _apply(input, target, pixel_weight, spec, need_grad, stats=None):
    if not HAVE_CUSTOM_OP or _eager(input):
        return _Function.apply(input, target, pixel_weight, spec, need_grad, stats)
    return _apply_op(input, target, pixel_weight, spec, need_grad, stats)


def _resolve_group(process_group: Any, distributed: bool) -> Tuple[bool, Any]:
    """(distributed?, group) from the modules' keywords (group None: the default group)."""
    if not isinstance(distributed, bool):
        raise TypeError("distributed must be a bool; got %s" % type(distributed).__name__)
    if process_group is not None:
        return True, process_group
    return distributed, None


def _global_stats(loss: Loss, input: Tensor, target: Tensor, pixel_weight: Optional[Tensor],
                  group: Any) -> Tensor:
    """This shard's statistics summed over the ranks of ``group`` (an all-reduce)."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("culoss: a distributed loss needs torch.distributed to be initialized "
                           "(torch.distributed.init_process_group)")
    stats = loss.stats(input.detach(), target, pixel_weight)
    dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=group)
    return stats


_disable = getattr(getattr(torch, "compiler", None), "disable", None)
if _disable is not None:  # torch.compile: the statistics and the collective run eagerly
    _global_stats = _disable(_global_stats)


def _plan(loss: Loss) -> Tuple[str, Optional[int]]:
    """(spec string, softmax axis or None): what the forward needs, computed once per module
    so that a compiled forward reads attributes only. With a softmax axis, culoss receives
    probabilities, and the loss as created is checked against the shapes first
    (``_softmax_checks``): a softmax over one class is refused as culoss refuses it."""
    axis = None
    if not loss.separable():
        # reduction="none" of a per-class region loss with a softmax: each value depends on
        # every class's logits, so the gradient of sum(w * value) is not the saved gradient
        # times w. Take the softmax in PyTorch (autograd carries it) and give culoss
        # probabilities.
        axis = loss.get("class_axis")
        _softmax_checks[_loss.spec_json(loss.replace(activation="none"))] = loss
        loss = loss.replace(activation="none")
    return _loss.spec_json(loss), axis


# spec of a loss given probabilities -> the loss as created (with its softmax)
_softmax_checks: Dict[str, Loss] = {}


def compute(loss: Loss, input: Tensor, target: Tensor, pixel_weight: Optional[Tensor] = None,
            *, process_group: Any = None, distributed: bool = False) -> Tensor:
    """The value of ``loss`` as a tensor with autograd (one culoss call for value and
    gradient). With ``process_group`` or ``distributed=True``: the loss of the global batch
    whose shard this rank holds (see the module docstring)."""
    if not isinstance(loss, Loss):
        raise TypeError("loss must be a culoss loss; got %s" % type(loss).__name__)
    dist_on, group = _resolve_group(process_group, distributed)
    spec, axis = _plan(loss)
    return _apply_plan(spec, axis, input, target, pixel_weight, dist_on, group)


def _apply_plan(spec: str, softmax_axis: Optional[int], input: Tensor, target: Tensor,
                pixel_weight: Optional[Tensor], distributed: bool = False,
                group: Any = None) -> Tensor:
    if softmax_axis is not None:
        if input.shape[softmax_axis] == 1:  # refused by culoss: raise its error
            _check_shapes(_softmax_checks[spec], input, target)
        input = torch.softmax(input, dim=softmax_axis)
    need_grad = bool(torch.is_grad_enabled() and input.requires_grad)
    input = input.contiguous()
    target = target.contiguous()
    if pixel_weight is not None:
        pixel_weight = pixel_weight.contiguous()
    if not distributed:
        return _apply(input, target, pixel_weight, spec, need_grad)
    stats = _global_stats(_loss_for(spec), input, target, pixel_weight, group)
    return _apply(input, target, pixel_weight, spec, need_grad, stats)


class LossModule(nn.Module):
    """Wraps any culoss loss (a kind or a :class:`culoss.Sum`) as an ``nn.Module``.

    ``forward(input, target, pixel_weight=None)`` returns the loss tensor.

    ``process_group`` (a ``torch.distributed`` ProcessGroup) or ``distributed=True`` (the
    default group): each rank passes its shard of the global batch; the forward all-reduces
    the shards' statistics and returns the loss of the global batch, and the backward gives
    the shard's slice of its gradient. Pooled Lovász (``per_image=False``) raises
    :class:`culoss.NotSupportedError` at the forward.
    """

    def __init__(self, loss: Loss, *, process_group: Any = None, distributed: bool = False):
        super().__init__()
        if not isinstance(loss, Loss):
            raise TypeError("LossModule wraps a culoss loss; got %s" % type(loss).__name__)
        self.loss = loss
        self._spec, self._softmax_axis = _plan(loss)
        self._distributed, self.process_group = _resolve_group(process_group, distributed)

    @property
    def distributed(self) -> bool:
        return self._distributed

    def forward(self, input: Tensor, target: Tensor,
                pixel_weight: Optional[Tensor] = None) -> Tensor:
        return _apply_plan(self._spec, self._softmax_axis, input, target, pixel_weight,
                           self._distributed, self.process_group)

    def extra_repr(self) -> str:
        return repr(self.loss) + (", distributed=True" if self._distributed else "")


class _ModuleClass(type(LossModule)):  # type: ignore[misc]
    """The class of the modules: keywords and docstring from their culoss class, read when
    first asked for (the library's registry is not loaded on import)."""

    @property
    def __signature__(cls) -> inspect.Signature:
        sig = inspect.signature(cls._kind_cls)
        extra = [inspect.Parameter("process_group", inspect.Parameter.KEYWORD_ONLY, default=None),
                 inspect.Parameter("distributed", inspect.Parameter.KEYWORD_ONLY, default=False)]
        return sig.replace(parameters=list(sig.parameters.values()) + extra)

    @property
    def __doc__(cls) -> str:  # type: ignore[override]
        return ("``nn.Module`` for :class:`culoss.%s` (same keyword arguments).\n\n%s"
                % (cls._kind_cls.__name__, cls._kind_cls.__doc__))


def _module_class(name: str, kind_name: str) -> type:
    kind_cls = _loss.KIND_CLASSES[kind_name]

    def __init__(self, *, process_group: Any = None, distributed: bool = False,
                 **params: Any) -> None:
        LossModule.__init__(self, kind_cls(**params), process_group=process_group,
                            distributed=distributed)

    __init__.__qualname__ = name + ".__init__"
    return _ModuleClass(name, (LossModule,), {"__init__": __init__, "_kind_cls": kind_cls,
                                              "__module__": __name__, "__qualname__": name})


DiceLoss = _module_class("DiceLoss", "Dice")
JaccardLoss = _module_class("JaccardLoss", "Jaccard")
TverskyLoss = _module_class("TverskyLoss", "Tversky")
FocalTverskyLoss = _module_class("FocalTverskyLoss", "FocalTversky")
GeneralizedDiceLoss = _module_class("GeneralizedDiceLoss", "GeneralizedDice")
BCELoss = _module_class("BCELoss", "BCE")
CrossEntropyLoss = _module_class("CrossEntropyLoss", "CrossEntropy")
FocalLoss = _module_class("FocalLoss", "Focal")
ComboLoss = _module_class("ComboLoss", "Combo")
MarginalCrossEntropyLoss = _module_class("MarginalCrossEntropyLoss", "MarginalCrossEntropy")
LovaszHingeLoss = _module_class("LovaszHingeLoss", "LovaszHinge")
LovaszSoftmaxLoss = _module_class("LovaszSoftmaxLoss", "LovaszSoftmax")
MCCLoss = _module_class("MCCLoss", "MCC")
TopKCrossEntropyLoss = _module_class("TopKCrossEntropyLoss", "TopKCrossEntropy")
HausdorffDTLoss = _module_class("HausdorffDTLoss", "HausdorffDT")
BoundaryLoss = _module_class("BoundaryLoss", "Boundary")
ClDiceLoss = _module_class("ClDiceLoss", "ClDice")
