"""HAUSDORFF_DT, BOUNDARY and CLDICE against their peers: MONAI's HausdorffDTLoss and
SoftclDiceLoss, Kervadec's boundary loss with the signed distance map computed by SciPy, and the
exact distance transforms against scipy.ndimage.distance_transform_edt (through HAUSDORFF_DT
with alpha = 1 and p = 1 - t, whose per-element loss is 2 (d + d_bar)). Each peer is optional."""

import numpy as np
import pytest

from conftest import optional_import

import culoss

torch = optional_import("torch")
ndimage = optional_import("scipy.ndimage")
monai_losses = optional_import("monai.losses")

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
needs_scipy = pytest.mark.skipif(ndimage is None, reason="SciPy is not installed")
needs_monai = pytest.mark.skipif(monai_losses is None or torch is None,
                                 reason="MONAI is not installed")


def distance_field(mask, spacing=None):
    """f = d + d_bar of a boolean mask, computed by culoss."""
    x = np.where(mask, 0.0, 1.0)[None, None]
    t = mask.astype(np.float64)[None, None]
    kw = {} if spacing is None else {"spacing": list(spacing)}
    v, _ = culoss.HausdorffDT(activation="none", reduction="none", alpha=1.0, **kw)(x, t)
    return np.asarray(v)[0, 0] / 2


def scipy_field(mask, spacing=None):
    if not mask.any() or mask.all():
        return np.zeros(mask.shape)
    return (ndimage.distance_transform_edt(mask, sampling=spacing)
            + ndimage.distance_transform_edt(~mask, sampling=spacing))


@needs_scipy
@pytest.mark.parametrize("shape", [(1,), (23,), (1, 9), (17, 13), (40, 3), (6, 7, 8), (1, 9, 4),
                                   (12, 12, 12)])
@pytest.mark.parametrize("density", [0.02, 0.5, 0.97])
@pytest.mark.parametrize("anisotropic", [False, True])
def test_distance_transform_equals_scipy(shape, density, anisotropic):
    rng = np.random.default_rng(hash((shape, density, anisotropic)) % 2**32)
    mask = rng.uniform(size=shape) < density
    spacing = tuple(rng.uniform(0.3, 3.0, size=len(shape))) if anisotropic else None
    np.testing.assert_allclose(distance_field(mask, spacing), scipy_field(mask, spacing),
                               rtol=1e-12, atol=1e-12)


@needs_scipy
@pytest.mark.parametrize("shape", [(300,), (64, 80), (9, 70), (24, 30, 28)])
@pytest.mark.parametrize("anisotropic", [False, True])
def test_distance_transform_of_blobs_equals_scipy(shape, anisotropic):
    # unions of balls and their complements: long runs of one class (lower envelopes) next to
    # short ones at the rims (direct search)
    rng = np.random.default_rng(hash((shape, anisotropic, "blobs")) % 2**32)
    grid = np.indices(shape).reshape(len(shape), -1).T
    mask = np.zeros(int(np.prod(shape)), bool)
    for _ in range(6):
        centre = rng.uniform(0, shape)
        radius = rng.uniform(2, max(3, min(shape) / 3))
        mask |= ((grid - centre) ** 2).sum(axis=1) < radius**2
    mask = mask.reshape(shape)
    spacing = tuple(rng.uniform(0.3, 3.0, size=len(shape))) if anisotropic else None
    for m in (mask, ~mask):
        np.testing.assert_allclose(distance_field(m, spacing), scipy_field(m, spacing),
                                   rtol=1e-12, atol=1e-12)


@needs_scipy
def test_distance_transform_edge_masks():
    for shape in [(5, 6), (3, 4, 5), (7,)]:
        empty = np.zeros(shape, bool)
        np.testing.assert_array_equal(distance_field(empty), 0.0)
        np.testing.assert_array_equal(distance_field(~empty), 0.0)
        one = empty.copy()
        one.flat[len(one.flat) // 2] = True
        np.testing.assert_allclose(distance_field(one, [0.5] * len(shape)),
                                   scipy_field(one, [0.5] * len(shape)), rtol=1e-12)


# ----------------------------------------------------------------------------- MONAI


def torch_check(ours, ref, x, target, rtol, atol):
    xr = x.clone().requires_grad_(True)
    r = ref(xr)
    r.sum().backward()
    v, g = ours(x.numpy(), target)
    np.testing.assert_allclose(np.asarray(v).reshape(r.shape), r.detach().numpy(), rtol=rtol,
                               atol=atol)
    np.testing.assert_allclose(g, xr.grad.numpy(), rtol=rtol, atol=atol)


def data(shape, seed=3):
    g = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    x = torch.randn(*shape, dtype=torch.float64, generator=g) * 1.5
    labels = torch.randint(0, c, (n,) + tuple(shape[2:]), generator=g)
    onehot = torch.nn.functional.one_hot(labels, c).movedim(-1, 1).double().contiguous()
    return x, labels, onehot


@needs_monai
@pytest.mark.parametrize("shape", [(2, 3, 12, 11), (2, 2, 6, 5, 7)])
@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("alpha", [2.0, 1.3])
def test_monai_hausdorff_dt(shape, include_background, alpha):
    x, labels, onehot = data(shape)
    ref = monai_losses.HausdorffDTLoss(alpha=alpha, include_background=include_background,
                                       softmax=True)
    ours = culoss.HausdorffDT(activation="softmax", alpha=alpha,
                              include_background=include_background)
    # MONAI keeps its distance maps in float32: agreement to float32's rounding.
    torch_check(ours, lambda t: ref(t, onehot), x, labels.numpy(), rtol=1e-6, atol=1e-9)


@needs_monai
def test_monai_hausdorff_dt_sigmoid():
    x, _, _ = data((2, 2, 9, 8), seed=5)
    t = (torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.3).double()
    ref = monai_losses.HausdorffDTLoss(sigmoid=True, include_background=True)
    torch_check(culoss.HausdorffDT(activation="sigmoid"), lambda u: ref(u, t), x, t.numpy(),
                rtol=1e-6, atol=1e-9)


@needs_monai
@pytest.mark.parametrize("shape", [(2, 3, 14, 12), (1, 2, 7, 8, 6)])
@pytest.mark.parametrize("iterations", [1, 3, 6])
def test_monai_soft_cldice(shape, iterations):
    x, labels, onehot = data(shape)
    # MONAI 1.6: micro average over the classes per image, mean over the images; its harmonic
    # mean adds `smooth` (1e-4 by default) to Tprec + Tsens, which culoss does not: set it tiny.
    ref = monai_losses.SoftclDiceLoss(iter_=iterations, softmax=True, smooth=1e-12)
    ours = culoss.ClDice(activation="softmax", average="micro", iterations=iterations)
    torch_check(ours, lambda t: ref(t, onehot), x, labels.numpy(), rtol=1e-9, atol=1e-12)
    # With MONAI's default smooth the values differ by about 1e-4 relative.
    ref_default = monai_losses.SoftclDiceLoss(iter_=iterations, softmax=True)
    v, _ = ours(x.numpy(), labels.numpy())
    assert abs(float(v) - float(ref_default(x, onehot))) < 1e-4


@needs_monai
def test_monai_soft_dice_cldice_is_one_sum():
    x, labels, onehot = data((2, 2, 16, 16), seed=9)
    ref = monai_losses.SoftDiceclDiceLoss(softmax=True, alpha=0.3, smooth=1e-12)
    dice = culoss.Dice(activation="softmax", smooth_nr=1.0, smooth_dr=1.0)
    cl = culoss.ClDice(activation="softmax", average="micro")
    torch_check(0.7 * dice + 0.3 * cl, lambda t: ref(t, onehot), x, labels.numpy(), rtol=1e-9,
                atol=1e-12)


# ----------------------------------------------------------------------------- Kervadec


def kervadec_sdf(onehot, spacing=None):
    """Kervadec et al.'s one_hot2dist (their repository's utils.py) with the contract's
    max(d - 1, 0) inside the target."""
    out = np.zeros(onehot.shape)
    for n in range(onehot.shape[0]):
        for c in range(onehot.shape[1]):
            pos = onehot[n, c].astype(bool)
            if pos.any() and not pos.all():
                neg = ~pos
                out[n, c] = (ndimage.distance_transform_edt(neg, sampling=spacing) * neg
                             - np.maximum(ndimage.distance_transform_edt(pos, sampling=spacing)
                                          - 1, 0) * pos)
    return out


@needs_scipy
@needs_torch
@pytest.mark.parametrize("shape, spacing", [((2, 3, 13, 10), None), ((2, 3, 13, 10), (1.0, 2.5)),
                                            ((1, 2, 6, 7, 5), (1.5, 1.0, 2.0))])
def test_kervadec_boundary(shape, spacing):
    x, labels, onehot = data(shape, seed=11)
    phi = torch.from_numpy(kervadec_sdf(onehot.numpy(), spacing))
    kw = {} if spacing is None else {"spacing": list(spacing)}
    # Kervadec's SurfaceLoss: mean of softmax probabilities times the distance map (classes 1..).
    ours = culoss.Boundary(activation="softmax", include_background=False, **kw)

    def ref(t):
        p = torch.softmax(t, 1)
        return (p[:, 1:] * phi[:, 1:]).mean()

    torch_check(ours, ref, x, labels.numpy(), rtol=1e-12, atol=1e-14)


@needs_torch
def test_torch_modules_and_reduction_none():
    import culoss.torch as ct
    x, labels, onehot = data((2, 3, 8, 9), seed=4)
    for mod, shape in [(ct.HausdorffDTLoss(reduction="none"), (2, 3, 8, 9)),
                       (ct.BoundaryLoss(reduction="none"), (2, 3, 8, 9)),
                       (ct.ClDiceLoss(reduction="none"), (2, 3))]:
        xr = x.clone().float().requires_grad_(True)
        v = mod(xr, labels)
        assert tuple(v.shape) == shape
        v.sum().backward()
        assert torch.isfinite(xr.grad).all()


def test_refusals():
    x = np.zeros((1, 2, 2, 2, 2, 2), np.float32)
    t = np.zeros((1, 2, 2, 2, 2), np.int64)
    with pytest.raises(culoss.NotSupportedError, match="1 to 3 spatial axes"):
        culoss.HausdorffDT()(x, t)
    with pytest.raises(culoss.NotSupportedError, match="2 or 3 spatial axes"):
        culoss.ClDice()(np.zeros((1, 2, 5), np.float32), np.zeros((1, 5), np.int64))
    with pytest.raises(culoss.ShapeMismatchError, match="SPACING has 3 values"):
        culoss.Boundary(spacing=[1, 2, 3])(np.zeros((1, 2, 4, 4), np.float32),
                                           np.zeros((1, 4, 4), np.int64))
    with pytest.raises(ValueError, match="> 0"):
        culoss.Boundary(spacing=[1, 0])
    with pytest.raises(ValueError, match="iterations"):
        culoss.ClDice(iterations=51)
