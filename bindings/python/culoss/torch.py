"""PyTorch adapter: an ``nn.Module`` per culoss kind, with autograd.

    import culoss.torch
    criterion = culoss.torch.DiceLoss(include_background=False)
    loss = criterion(logits, labels)      # one culoss call: value and gradient
    loss.backward()                       # scales the saved gradient by grad_output

The forward runs a single culoss call that computes the value and the gradient with respect to
the input; the backward multiplies that saved gradient by ``grad_output`` (broadcast over the
axes a ``reduction="none"`` value stands for). The call is the custom operator
``torch.ops.culoss.compute`` (``torch.library.custom_op``, PyTorch >= 2.4), so ``torch.compile``
keeps it as one opaque node; older PyTorch gets a ``torch.autograd.Function``.

Mixed precision: float16/bfloat16 inputs are read as they are (value in float32); the saved
gradient is kept in float32 so that small gradients do not underflow before the loss scale of
a ``GradScaler`` reaches them, and it is cast to the input's dtype in the backward.

No gradient flows to ``target`` or ``pixel_weight``. Non-contiguous inputs are made
contiguous (a copy) here, unlike the core ``culoss`` API, which refuses them.
"""

import threading
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from . import _loss
from ._loss import Loss

__all__ = [
    "compute", "LossModule", "DiceLoss", "JaccardLoss", "TverskyLoss", "FocalTverskyLoss",
    "GeneralizedDiceLoss", "BCELoss", "CrossEntropyLoss", "FocalLoss", "ComboLoss",
    "MarginalCrossEntropyLoss", "LovaszHingeLoss", "LovaszSoftmaxLoss", "HAVE_CUSTOM_OP",
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
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _value_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _forward_impl(input: Tensor, target: Tensor, pixel_weight: Optional[Tensor], spec: str,
                  need_grad: bool) -> Tuple[Tensor, Tensor]:
    loss = _loss_for(spec)
    gd = "float32" if _grad_dtype(input.dtype) != input.dtype else None
    value, grad = loss(input, target, pixel_weight, grad=need_grad, grad_dtype=gd)
    if grad is None:
        grad = input.new_empty((0,), dtype=_grad_dtype(input.dtype))
    return value, grad


def _forward_fake(input: Tensor, target: Tensor, pixel_weight: Optional[Tensor], spec: str,
                  need_grad: bool) -> Tuple[Tensor, Tensor]:
    loss = _loss_for(spec)
    value = input.new_empty(loss.output_shape(input.shape), dtype=_value_dtype(input.dtype))
    if need_grad:
        grad = input.new_empty(input.shape, dtype=_grad_dtype(input.dtype))
    else:
        grad = input.new_empty((0,), dtype=_grad_dtype(input.dtype))
    return value, grad


def _scale(grad: Tensor, grad_value: Tensor, spec: str, input_dtype: torch.dtype) -> Tensor:
    """grad_input = saved gradient x grad_output, broadcast over the value's axes."""
    loss = _loss_for(spec)
    axes = loss.output_axes(grad.dim()) or ()
    if axes:
        view = [1] * grad.dim()
        for i, a in enumerate(axes):
            view[a] = grad_value.shape[i]
        grad_value = grad_value.reshape(view)
    return (grad * grad_value.to(grad.dtype)).to(input_dtype)


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

    def _setup_context(ctx, inputs, output):
        input, _target, _pw, spec, need_grad = inputs
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
        return _scale(grad, grad_value, ctx.spec, ctx.input_dtype), None, None, None, None

    torch.library.register_autograd("culoss::compute", _backward, setup_context=_setup_context)

    def _apply(input, target, pixel_weight, spec, need_grad):
        value, _grad = _compute_op(input, target, pixel_weight, spec, need_grad)
        return value
else:  # pragma: no cover - old PyTorch
    class _Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, target, pixel_weight, spec, need_grad):
            value, grad = _forward_impl(input, target, pixel_weight, spec, need_grad)
            ctx.spec = spec
            ctx.input_dtype = input.dtype
            ctx.save_for_backward(grad)
            return value

        @staticmethod
        def backward(ctx, grad_value):
            (grad,) = ctx.saved_tensors
            return _scale(grad, grad_value, ctx.spec, ctx.input_dtype), None, None, None, None

    def _apply(input, target, pixel_weight, spec, need_grad):
        return _Function.apply(input, target, pixel_weight, spec, need_grad)


def _plan(loss: Loss) -> Tuple[str, Optional[int]]:
    """(spec string, softmax axis or None): what the forward needs, computed once per module
    so that a compiled forward reads attributes only."""
    axis = None
    if not loss.separable():
        # reduction="none" of a per-class region loss with a softmax: each value depends on
        # every class's logits, so the gradient of sum(w * value) is not the saved gradient
        # times w. Take the softmax in PyTorch (autograd carries it) and give culoss
        # probabilities.
        axis = loss.get("class_axis")
        loss = loss.replace(activation="none")
    return _loss.spec_json(loss), axis


def compute(loss: Loss, input: Tensor, target: Tensor,
            pixel_weight: Optional[Tensor] = None) -> Tensor:
    """The value of ``loss`` as a tensor with autograd (one culoss call for value and
    gradient)."""
    if not isinstance(loss, Loss):
        raise TypeError("loss must be a culoss loss; got %s" % type(loss).__name__)
    spec, axis = _plan(loss)
    return _apply_plan(spec, axis, input, target, pixel_weight)


def _apply_plan(spec: str, softmax_axis: Optional[int], input: Tensor, target: Tensor,
                pixel_weight: Optional[Tensor]) -> Tensor:
    if softmax_axis is not None:
        input = torch.softmax(input, dim=softmax_axis)
    need_grad = bool(torch.is_grad_enabled() and input.requires_grad)
    input = input.contiguous()
    target = target.contiguous()
    if pixel_weight is not None:
        pixel_weight = pixel_weight.contiguous()
    return _apply(input, target, pixel_weight, spec, need_grad)


class LossModule(nn.Module):
    """Wraps any culoss loss (a kind or a :class:`culoss.Sum`) as an ``nn.Module``.

    ``forward(input, target, pixel_weight=None)`` returns the loss tensor.
    """

    def __init__(self, loss: Loss):
        super().__init__()
        if not isinstance(loss, Loss):
            raise TypeError("LossModule wraps a culoss loss; got %s" % type(loss).__name__)
        self.loss = loss
        self._spec, self._softmax_axis = _plan(loss)

    def forward(self, input: Tensor, target: Tensor,
                pixel_weight: Optional[Tensor] = None) -> Tensor:
        return _apply_plan(self._spec, self._softmax_axis, input, target, pixel_weight)

    def extra_repr(self) -> str:
        return repr(self.loss)


def _module_class(name: str, kind_name: str) -> type:
    kind_cls = _loss.KIND_CLASSES[kind_name]

    def __init__(self, **params: Any) -> None:
        LossModule.__init__(self, kind_cls(**params))

    __init__.__signature__ = kind_cls.__init__.__signature__  # type: ignore[attr-defined]
    __init__.__qualname__ = name + ".__init__"
    doc = ("``nn.Module`` for :class:`culoss.%s` (same keyword arguments).\n\n%s"
           % (kind_name, kind_cls.__doc__))
    return type(name, (LossModule,), {"__init__": __init__, "__doc__": doc,
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
