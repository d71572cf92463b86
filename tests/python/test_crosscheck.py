"""culoss against the losses users already have: MONAI, segmentation_models_pytorch, kornia,
torchvision and torch.nn.functional, each configured to the same definition (values and
input gradients). Every mapping here is documented in bindings/python/README.md. Each library
is optional: its tests skip when it is not installed."""

import numpy as np
import pytest

from conftest import optional_import

torch = optional_import("torch")
if torch is None:
    pytest.skip("PyTorch is not installed", allow_module_level=True)
F = torch.nn.functional

import culoss  # noqa: E402

monai_losses = optional_import("monai.losses")
smp_losses = optional_import("segmentation_models_pytorch.losses")
kornia_losses = optional_import("kornia.losses")
tv_ops = optional_import("torchvision.ops")

needs = {
    "monai": pytest.mark.skipif(monai_losses is None, reason="MONAI is not installed"),
    "smp": pytest.mark.skipif(smp_losses is None,
                              reason="segmentation_models_pytorch is not installed"),
    "kornia": pytest.mark.skipif(kornia_losses is None, reason="kornia is not installed"),
    "torchvision": pytest.mark.skipif(tv_ops is None, reason="torchvision is not installed"),
}

N, C, H, W = 2, 3, 6, 7


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N, C, H, W, dtype=torch.float64, generator=g) * 1.5
    labels = torch.randint(0, C, (N, H, W), generator=g)
    labels[:, 0, :C] = torch.arange(C)  # every class in every image
    onehot = F.one_hot(labels, C).permute(0, 3, 1, 2).double().contiguous()
    dense = (torch.rand(N, C, H, W, generator=g) < 0.4).double()
    return x, labels, onehot, dense


def check(ours, ref_fn, x, target, pixel_weight=None, scale=1.0, rtol=1e-9, atol=1e-12,
          value_shape=None):
    """ours(x, target) * scale against ref_fn(x), value and d(sum of values)/dx."""
    xr = x.clone().requires_grad_(True)
    ref = ref_fn(xr)
    ref.sum().backward()
    t = target.numpy() if isinstance(target, torch.Tensor) else target
    v, g = ours(x.numpy(), t, pixel_weight)
    ref_v = ref.detach().numpy()
    if value_shape is not None:
        ref_v = ref_v.reshape(value_shape)
    np.testing.assert_allclose(np.asarray(v) * scale, ref_v, rtol=rtol, atol=atol)
    np.testing.assert_allclose(g * scale, xr.grad.numpy(), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- MONAI

@needs["monai"]
@pytest.mark.parametrize("opts", [
    {}, {"include_background": False}, {"batch": True}, {"squared_pred": True},
    {"jaccard": True}, {"reduction": "sum"}, {"reduction": "none"},
])
def test_monai_dice(opts, data):
    x, labels, onehot, _ = data
    ours = {"include_background": opts.get("include_background", True),
            "batch": opts.get("batch", False),
            "squared_denominator": opts.get("squared_pred", False),
            "reduction": opts.get("reduction", "mean")}
    kind = culoss.Dice
    if opts.get("jaccard"):
        # MONAI's Jaccard is (2I + s_nr) / (2(SP + ST - I) + s_dr): half the smoothing
        kind = culoss.Jaccard
        ours.update(smooth_nr=0.5e-5, smooth_dr=0.5e-5)
    # with squared_pred MONAI takes sum(t^2) of its float32 one-hot target: ~1e-7 rounding
    rtol, atol = (1e-6, 1e-9) if opts.get("squared_pred") else (1e-9, 1e-12)
    theirs = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, **opts)
    shape = None
    if opts.get("reduction") == "none":
        shape = (N, C)
    if opts.get("reduction") == "none" and not ours["include_background"]:
        pytest.skip("MONAI drops the background column; culoss writes 0 there")
    check(kind(**ours), lambda a: theirs(a, labels[:, None]), x, labels, value_shape=shape,
          rtol=rtol, atol=atol)


@needs["monai"]
def test_monai_dice_on_probabilities_and_sigmoid(data):
    x, labels, onehot, dense = data
    p = torch.softmax(x, 1)
    # MONAI's default: no activation (probabilities), dense one-hot target
    check(culoss.Dice(activation="none"), lambda a: monai_losses.DiceLoss()(a, onehot), p,
          onehot)
    check(culoss.Dice(activation="sigmoid"),
          lambda a: monai_losses.DiceLoss(sigmoid=True)(a, dense), x, dense)


@needs["monai"]
def test_monai_dice_class_weights(data):
    x, labels, _, _ = data
    w = [0.5, 2.0, 1.0]
    theirs = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, weight=w)
    # MONAI: mean(w_c * loss) over N*C pairs; culoss MEAN divides by the summed weights
    check(culoss.Dice(class_weights=w, reduction="sum"), lambda a: theirs(a, labels[:, None]), x,
          labels, scale=1.0 / (N * C))


@needs["monai"]
@pytest.mark.parametrize("opts", [{}, {"w_type": "simple"}, {"w_type": "uniform"},
                                  {"batch": True}, {"include_background": False}])
def test_monai_generalized_dice(opts, data):
    x, labels, _, _ = data
    labels = labels.clone()
    labels[1][labels[1] == 2] = 1  # class 2 absent from image 1: the largest-weight rule
    ours = {"weight_type": opts.get("w_type", "square"), "batch": opts.get("batch", False),
            "include_background": opts.get("include_background", True)}
    theirs = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, **opts)
    # MONAI computes the class weights in float32
    check(culoss.GeneralizedDice(**ours), lambda a: theirs(a, labels[:, None]), x, labels,
          rtol=1e-6, atol=1e-9)


@needs["monai"]
@pytest.mark.parametrize("alpha, beta", [(0.5, 0.5), (0.3, 0.7)])
def test_monai_tversky(alpha, beta, data):
    x, labels, _, _ = data
    theirs = monai_losses.TverskyLoss(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta)
    check(culoss.Tversky(alpha=alpha, beta=beta), lambda a: theirs(a, labels[:, None]), x,
          labels)


@needs["monai"]
def test_monai_focal(data):
    x, labels, onehot, dense = data
    # MONAI's FocalLoss works in float32; no alpha by default (culoss: alpha=-1)
    check(culoss.Focal(alpha=-1.0), lambda a: monai_losses.FocalLoss()(a, dense), x, dense,
          rtol=2e-5, atol=1e-8)
    check(culoss.Focal(), lambda a: monai_losses.FocalLoss(alpha=0.25)(a, dense), x, dense,
          rtol=2e-5, atol=1e-8)
    # MONAI's "sum" averages over the spatial axes first
    check(culoss.Focal(reduction="sum"),
          lambda a: monai_losses.FocalLoss(alpha=0.25, reduction="sum")(a, dense), x, dense,
          scale=1.0 / (H * W), rtol=2e-5, atol=1e-8)
    # softmax focal: MONAI's mean runs over N*C*H*W elements, culoss's over N*H*W pixels
    theirs = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True)
    check(culoss.Focal(activation="softmax"), lambda a: theirs(a, labels[:, None]), x, labels,
          scale=1.0 / C, rtol=2e-5, atol=1e-8)


@needs["monai"]
@pytest.mark.parametrize("opts", [{}, {"batch": True}, {"include_background": False},
                                  {"reduction": "sum"}])
def test_monai_soft_label(opts, data):
    """MONAI's soft_label=True on soft targets (probabilities and sigmoid logits): Dice,
    Jaccard (half the smoothing, as above) and Tversky."""
    x, _, _, _ = data
    g = torch.Generator().manual_seed(11)
    soft = torch.rand(N, C, H, W, dtype=torch.float64, generator=g)
    p = torch.sigmoid(x)
    ours = dict(soft_label=True, include_background=opts.get("include_background", True),
                batch=opts.get("batch", False), reduction=opts.get("reduction", "mean"))
    for act, inp in (("none", p), ("sigmoid", x)):
        sig = act == "sigmoid"
        check(culoss.Dice(activation=act, **ours),
              lambda a: monai_losses.DiceLoss(sigmoid=sig, soft_label=True, **opts)(a, soft),
              inp, soft)
        check(culoss.Jaccard(activation=act, smooth_nr=0.5e-5, smooth_dr=0.5e-5, **ours),
              lambda a: monai_losses.DiceLoss(sigmoid=sig, jaccard=True, soft_label=True,
                                              **opts)(a, soft), inp, soft)
        check(culoss.Tversky(activation=act, alpha=0.3, beta=0.7, **ours),
              lambda a: monai_losses.TverskyLoss(sigmoid=sig, alpha=0.3, beta=0.7,
                                                 soft_label=True, **opts)(a, soft), inp, soft)


@needs["monai"]
def test_monai_soft_label_on_one_hot_is_the_default(data):
    x, labels, onehot, _ = data
    check(culoss.Dice(soft_label=True),
          lambda a: monai_losses.DiceLoss(softmax=True, soft_label=True)(a, onehot), x, labels)


# ----------------------------------------------------------------------------- smp

SMP_REGION = {"smooth_nr": 0.0, "smooth_dr": 0.0, "batch": True}


@needs["smp"]
def test_smp_dice_jaccard_tversky(data):
    x, labels, _, dense = data
    check(culoss.Dice(**SMP_REGION), lambda a: smp_losses.DiceLoss("multiclass")(a, labels),
          x, labels)
    check(culoss.Jaccard(**SMP_REGION),
          lambda a: smp_losses.JaccardLoss("multiclass")(a, labels), x, labels)
    check(culoss.Tversky(alpha=0.3, beta=0.7, **SMP_REGION),
          lambda a: smp_losses.TverskyLoss("multiclass", alpha=0.3, beta=0.7)(a, labels), x,
          labels)
    check(culoss.Dice(activation="sigmoid", **SMP_REGION),
          lambda a: smp_losses.DiceLoss("multilabel")(a, dense), x, dense)
    xb, tb = x[:, :1].contiguous(), dense[:, :1].contiguous()
    check(culoss.Dice(activation="sigmoid", **SMP_REGION),
          lambda a: smp_losses.DiceLoss("binary")(a, tb), xb, tb)


@needs["smp"]
def test_smp_dice_with_an_absent_class(data):
    x, labels, _, _ = data
    labels = labels.clone()
    labels[labels == 2] = 1
    # smp zeroes an absent class's loss and still divides by C
    check(culoss.Dice(skip_empty=True, reduction="sum", **SMP_REGION),
          lambda a: smp_losses.DiceLoss("multiclass")(a, labels), x, labels, scale=1.0 / C)


@needs["smp"]
@pytest.mark.parametrize("per_image", [False, True])
def test_smp_lovasz(per_image, data):
    x, labels, _, dense = data
    x, dense = x.float(), dense.float()  # smp's Lovász-Softmax works in float32 only
    check(culoss.LovaszSoftmax(per_image=per_image),
          lambda a: smp_losses.LovaszLoss("multiclass", per_image=per_image)(a, labels), x,
          labels, rtol=1e-5, atol=1e-7)
    xb, tb = x[:, :1].contiguous(), dense[:, :1].contiguous()
    check(culoss.LovaszHinge(per_image=per_image),
          lambda a: smp_losses.LovaszLoss("binary", per_image=per_image)(a, tb), xb, tb,
          rtol=1e-5, atol=1e-7)


@needs["smp"]
def test_smp_mcc(data):
    """smp's MCCLoss (ε = 1e-5) takes probabilities and pools the batch and every channel."""
    x, _, _, dense = data
    xb, tb = x[:, :1].contiguous(), dense[:, :1].contiguous()
    smp_mcc = smp_losses.MCCLoss()
    check(culoss.MCC(activation="none", batch=True),
          lambda a: smp_mcc(a, tb), torch.sigmoid(xb), tb)
    check(culoss.MCC(activation="sigmoid", batch=True),
          lambda a: smp_mcc(torch.sigmoid(a), tb), xb, tb)
    check(culoss.MCC(activation="sigmoid", batch=True, average="micro"),
          lambda a: smp_mcc(torch.sigmoid(a), dense), x, dense)
    check(culoss.MCC(activation="sigmoid", batch=True, average="micro", soft_label=True),
          lambda a: smp_mcc(torch.sigmoid(a), dense), x, dense)
    for eps in (0.0, 1e-2):
        check(culoss.MCC(activation="sigmoid", batch=True, smooth_dr=eps),
              lambda a: smp_losses.MCCLoss(eps=eps)(torch.sigmoid(a), tb), xb, tb)


# ----------------------------------------------------------------------------- kornia

@needs["kornia"]
def test_kornia_dice_and_tversky(data):
    x, labels, _, _ = data
    k = {"smooth_nr": 0.0, "smooth_dr": 1e-8}
    check(culoss.Dice(average="micro", **k), lambda a: kornia_losses.dice_loss(a, labels), x,
          labels)
    check(culoss.Dice(**k), lambda a: kornia_losses.dice_loss(a, labels, average="macro"), x,
          labels)
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    check(culoss.Dice(average="micro", class_weights=w.tolist(), **k),
          lambda a: kornia_losses.dice_loss(a, labels, weight=w), x, labels)
    check(culoss.Tversky(alpha=0.3, beta=0.7, **k),
          lambda a: kornia_losses.tversky_loss(a, labels, 0.3, 0.7), x, labels)


@needs["kornia"]
def test_kornia_focal(data):
    x, labels, _, dense = data
    check(culoss.Focal(), lambda a: kornia_losses.binary_focal_loss_with_logits(
        a, dense, alpha=0.25, reduction="mean"), x, dense)
    # softmax focal: kornia's mean divides by N*C*H*W; its alpha is the class weight
    # (1 - alpha) for class 0 and alpha for the others
    pixels = N * H * W
    check(culoss.Focal(activation="softmax", reduction="sum"),
          lambda a: kornia_losses.focal_loss(a, labels, alpha=None, reduction="mean"), x,
          labels, scale=1.0 / (pixels * C))
    check(culoss.Focal(activation="softmax", reduction="sum", class_weights=[0.75, 0.25, 0.25]),
          lambda a: kornia_losses.focal_loss(a, labels, alpha=0.25, reduction="mean"), x,
          labels, scale=1.0 / (pixels * C))


@needs["kornia"]
def test_kornia_lovasz(data):
    x, labels, _, dense = data
    check(culoss.LovaszSoftmax(per_image=True, classes="all"),
          lambda a: kornia_losses.lovasz_softmax_loss(a, labels), x, labels)
    xb = x[:, :1].contiguous()
    tb = dense[:, 0].long()
    check(culoss.LovaszHinge(per_image=True), lambda a: kornia_losses.lovasz_hinge_loss(a, tb),
          xb, tb)


# ----------------------------------------------------------------------------- torchvision

@needs["torchvision"]
@pytest.mark.parametrize("alpha", [0.25, -1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torchvision_sigmoid_focal(alpha, reduction, data):
    x, _, _, dense = data
    check(culoss.Focal(alpha=alpha, reduction=reduction),
          lambda a: tv_ops.sigmoid_focal_loss(a, dense, alpha=alpha, gamma=2.0,
                                              reduction=reduction), x, dense)


# ----------------------------------------------------------------------------- torch

def test_torch_bce(data):
    x, _, _, dense = data
    check(culoss.BCE(), lambda a: F.binary_cross_entropy_with_logits(a, dense), x, dense)
    pw = [2.0, 1.0, 0.5]
    check(culoss.BCE(pos_weight=pw), lambda a: F.binary_cross_entropy_with_logits(
        a, dense, pos_weight=torch.tensor(pw, dtype=torch.float64).view(C, 1, 1)), x, dense)
    m = torch.rand(N, H, W, generator=torch.Generator().manual_seed(3)).float()
    check(culoss.BCE(), lambda a: F.binary_cross_entropy_with_logits(
        a, dense, weight=m.double()[:, None]), x, dense, pixel_weight=m.numpy(), rtol=1e-7)
    check(culoss.BCE(reduction="none"),
          lambda a: F.binary_cross_entropy_with_logits(a, dense, reduction="none"), x, dense)
    p = torch.sigmoid(x)
    check(culoss.BCE(activation="none"), lambda a: F.binary_cross_entropy(a, dense), p, dense)


@pytest.mark.parametrize("opts", [
    {}, {"weight": [0.2, 1.0, 3.0]}, {"ignore_index": 1}, {"label_smoothing": 0.1},
    {"weight": [0.2, 1.0, 3.0], "label_smoothing": 0.1, "ignore_index": 2},
    {"reduction": "sum"}, {"reduction": "none"},
])
def test_torch_cross_entropy(opts, data):
    x, labels, _, _ = data
    ours = {"class_weights": opts.get("weight"), "ignore_index": opts.get("ignore_index"),
            "label_smoothing": opts.get("label_smoothing"), "reduction": opts.get("reduction")}
    theirs = dict(opts)
    if "weight" in theirs:
        theirs["weight"] = torch.tensor(theirs["weight"], dtype=torch.float64)
    check(culoss.CrossEntropy(**ours), lambda a: F.cross_entropy(a, labels, **theirs), x,
          labels)


def test_torch_cross_entropy_soft_targets(data):
    x, _, _, _ = data
    soft = torch.softmax(torch.randn(N, C, H, W, dtype=torch.float64), 1)
    check(culoss.CrossEntropy(), lambda a: F.cross_entropy(a, soft), x, soft)
    check(culoss.CrossEntropy(label_smoothing=0.2),
          lambda a: F.cross_entropy(a, soft, label_smoothing=0.2), x, soft)


# ----------------------------------------------------------------------------- nnU-Net TopK

def nnunet_topk(a, labels, k, **ce):
    """nnU-Net's TopKLoss (nnunetv2 robust_ce_loss.py), restated: the per-voxel cross-entropy,
    the int(num_voxels * k / 100) largest of them over the batch, their plain mean."""
    res = F.cross_entropy(a, labels, reduction="none", **ce)
    num_voxels = res.numel()
    res, _ = torch.topk(res.view(-1), int(num_voxels * k / 100), sorted=False)
    return res.mean()


# k percent of N*H*W = 84 voxels that is a whole number: there int() and culoss's ceiling agree
@pytest.mark.parametrize("k", [25, 50, 100])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_nnunet_topk(k, smoothing, data):
    x, labels, _, _ = data
    assert (N * H * W * k) % 100 == 0
    check(culoss.TopKCrossEntropy(top_fraction=k / 100, label_smoothing=smoothing),
          lambda a: nnunet_topk(a, labels, k, label_smoothing=smoothing), x, labels)


def test_nnunet_topk_rounding_and_weights(data):
    """Where they differ (bindings/python/README.md): nnU-Net truncates k% of the voxels (10% of
    84 is 8) and culoss takes the ceiling (9); nnU-Net counts ignored voxels in num_voxels and
    divides the kept class-weighted losses by their number, culoss counts only the labelled
    pixels and divides by the kept pixels' class weights (CROSS_ENTROPY's MEAN over them)."""
    x, labels, _, _ = data
    ours, _ = culoss.TopKCrossEntropy(top_fraction=0.1)(x.numpy(), labels.numpy())
    res = F.cross_entropy(x, labels, reduction="none").view(-1)
    assert np.isclose(ours, torch.topk(res, 9).values.mean().item(), rtol=1e-12)
    assert not np.isclose(ours, nnunet_topk(x, labels, 10).item(), rtol=1e-6)
    # the plain mean of the kept weighted losses: culoss with class weights all equal to one
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    kept = torch.topk(F.cross_entropy(x, labels, weight=w, reduction="none").view(-1), 21)
    ours_w, _ = culoss.TopKCrossEntropy(top_fraction=0.25, class_weights=w.tolist())(
        x.numpy(), labels.numpy())
    divisor = w[labels.view(-1)[kept.indices]].sum()
    assert np.isclose(ours_w, (kept.values.sum() / divisor).item(), rtol=1e-12)
