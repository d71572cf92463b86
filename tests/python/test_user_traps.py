"""What new users trip on: one-class models, labels of the wrong shape, meta tensors, CUDA arrays
without a usable GPU. Each refusal is checked for its exception class and its message."""

import numpy as np
import pytest

import culoss
from conftest import optional_import

torch = optional_import("torch")

# every kind whose activation can be SOFTMAX, with the keyword that selects it
SOFTMAX_KINDS = [culoss.Dice, culoss.Jaccard, culoss.Tversky, culoss.FocalTversky,
                 culoss.GeneralizedDice, culoss.CrossEntropy, culoss.MarginalCrossEntropy,
                 culoss.LovaszSoftmax, culoss.Focal]


def _logits(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("cls", SOFTMAX_KINDS, ids=lambda c: c.__name__)
def test_softmax_over_one_class_is_refused(cls, rng):
    x = _logits(rng, (2, 1, 4, 4))
    labels = rng.integers(0, 2, (2, 4, 4))
    loss = cls(activation="softmax")
    with pytest.raises(culoss.InvalidArgumentError, match="CULOSS_ACTIVATION_SIGMOID") as e:
        loss(x, labels)
    assert "extent 1" in str(e.value) and "constant" in str(e.value)
    # channels-last and dense targets too
    with pytest.raises(culoss.InvalidArgumentError, match="CULOSS_ACTIVATION_SIGMOID"):
        cls(activation="softmax", class_axis=-1)(x.reshape(2, 4, 4, 1),
                                                 np.zeros((2, 4, 4, 1), np.float32))


def test_default_dice_on_one_channel_is_refused_and_sigmoid_works(rng):
    x = _logits(rng, (2, 1, 8, 8))
    mask = (rng.random((2, 8, 8)) < 0.3).astype(np.int64)
    with pytest.raises(culoss.InvalidArgumentError, match="set CULOSS_PARAM_ACTIVATION"):
        culoss.Dice()(x, mask)
    value, grad = culoss.Dice(activation="sigmoid")(x, mask)
    assert np.isfinite(value) and np.abs(grad).sum() > 0


def test_sum_with_one_softmax_term_is_refused(rng):
    x = _logits(rng, (2, 1, 4))
    with pytest.raises(culoss.InvalidArgumentError, match="CULOSS_CROSS_ENTROPY.*CULOSS_BCE"):
        (culoss.BCE() + culoss.CrossEntropy())(x, np.zeros((2, 1, 4), np.float32))


@pytest.mark.parametrize("cls", [culoss.Dice, culoss.Jaccard, culoss.Tversky,
                                 culoss.FocalTversky, culoss.GeneralizedDice],
                         ids=lambda c: c.__name__)
def test_one_class_probabilities_read_index_labels_as_a_mask(cls, rng):
    p = rng.random((3, 1, 5, 5)).astype(np.float32)
    labels = rng.integers(0, 2, (3, 5, 5)).astype(np.int64)
    labels[0, 0, :] = -100  # ignored
    dense = labels[:, None].astype(np.float32).clip(0, 1)
    weight = (labels != -100).astype(np.float32)
    loss = cls(activation="none")
    v_index, g_index = loss(p, labels)
    v_dense, g_dense = loss(p, dense, weight)
    np.testing.assert_allclose(v_index, v_dense, rtol=1e-6)
    np.testing.assert_allclose(g_index, g_dense, rtol=1e-5, atol=1e-7)
    # all-background labels are an empty foreground, not "everything is class 0"
    zeros = np.zeros((3, 5, 5), np.int64)
    v_zero, _ = loss(p, zeros)
    v_zero_dense, _ = loss(p, np.zeros_like(p))
    np.testing.assert_allclose(v_zero, v_zero_dense, rtol=1e-6)
    with pytest.raises(culoss.InvalidTargetError, match="binary mask"):
        loss(p, np.full((3, 5, 5), 2, np.int64))


def test_labels_with_a_singleton_class_axis_are_told_to_squeeze(rng):
    x = _logits(rng, (2, 4, 8, 8))
    labels = rng.integers(0, 4, (2, 1, 8, 8))
    with pytest.raises(culoss.ShapeMismatchError) as e:
        culoss.Dice()(x, labels)
    message = str(e.value)
    assert "(2, 8, 8)" in message and "squeeze" in message and "(2, 4, 8, 8)" in message
    # the squeezed labels work
    culoss.Dice()(x, labels[:, 0])


def test_float_labels_of_the_index_shape_name_the_dtype(rng):
    x = _logits(rng, (2, 3, 4))
    with pytest.raises(culoss.UnsupportedDtypeError, match="class indices"):
        culoss.CrossEntropy()(x, np.zeros((2, 4), np.float32))


def test_check_shapes_raises_what_the_call_raises():
    with pytest.raises(culoss.ShapeMismatchError, match="squeeze"):
        culoss.Dice().check_shapes((2, 4, 8, 8), "float32", (2, 1, 8, 8), "int64")
    with pytest.raises(culoss.InvalidArgumentError, match="CULOSS_ACTIVATION_SIGMOID"):
        culoss.Dice().check_shapes((2, 1, 8, 8), "float32", (2, 8, 8), "int64")
    culoss.Dice().check_shapes((2, 4, 8, 8), "bfloat16", (2, 8, 8), "uint8")  # fine


class _ClaimsCuda:
    """A DLPack producer that says its memory is on CUDA device 0 (a NumPy array inside)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__()

    def __dlpack_device__(self):
        return (2, 0)


def _cupy_has_device():
    cupy = optional_import("cupy")
    try:
        return cupy is not None and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(torch is None or torch.cuda.is_available() or _cupy_has_device(),
                    reason="needs PyTorch without a usable CUDA device")
def test_cuda_array_without_a_gpu_says_so(rng):
    x = _ClaimsCuda(_logits(rng, (2, 3, 4)))
    t = _ClaimsCuda(np.zeros((2, 4), np.int64))
    with pytest.raises(culoss.UnsupportedDeviceError, match="no usable CUDA device") as e:
        culoss.CrossEntropy()(x, t)
    assert "PyTorch" in str(e.value) and "install" not in str(e.value)


@pytest.mark.skipif(torch is None, reason="needs PyTorch")
def test_meta_tensors_are_refused_by_the_core_api():
    x = torch.empty(2, 3, 4, device="meta")
    t = torch.empty(2, 4, dtype=torch.int64, device="meta")
    with pytest.raises(culoss.UnsupportedDeviceError, match="meta tensor"):
        culoss.CrossEntropy()(x, t)
    with pytest.raises(culoss.UnsupportedDeviceError, match="target is a PyTorch meta"):
        culoss.CrossEntropy()(torch.zeros(2, 3, 4), t)


@pytest.mark.skipif(torch is None, reason="needs PyTorch")
def test_torch_modules_propagate_meta_shapes_and_refuse_one_class_softmax():
    import culoss.torch as ct
    x = torch.empty(2, 3, 4, 4, device="meta", requires_grad=True)
    t = torch.empty(2, 4, 4, dtype=torch.int64, device="meta")
    v = ct.DiceLoss()(x, t)
    assert v.is_meta and v.shape == ()
    v_none = ct.CrossEntropyLoss(reduction="none")(x, t)
    assert v_none.is_meta and v_none.shape == (2, 4, 4)
    one = torch.empty(2, 1, 4, 4, device="meta")
    with pytest.raises(culoss.InvalidArgumentError, match="CULOSS_ACTIVATION_SIGMOID"):
        ct.DiceLoss()(one, t)
    # real tensors, every path: plain, and the NONE region path that applies the softmax in
    # PyTorch before culoss sees probabilities
    real = torch.randn(2, 1, 4, 4, requires_grad=True)
    labels = torch.randint(0, 2, (2, 4, 4))
    for module in (ct.DiceLoss(), ct.DiceLoss(reduction="none"), ct.CrossEntropyLoss(),
                   ct.LossModule(culoss.Dice() + culoss.CrossEntropy())):
        with pytest.raises(culoss.InvalidArgumentError, match="CULOSS_ACTIVATION_SIGMOID"):
            module(real, labels)
    assert real.grad is None
    value = ct.DiceLoss(activation="sigmoid")(real, labels)
    value.backward()
    assert real.grad is not None and torch.isfinite(real.grad).all()
