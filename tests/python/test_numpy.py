"""Every kind through NumPy, compared with direct C API calls on the same library."""

import numpy as np
import pytest

import culoss
from cases import CASES, case_id, make_inputs


def direct(capi, kind, params, x, t, pw=None, out_shape=(), grad=True, grad_scale=1.0,
           grad_dtype=None):
    h = capi.create(kind, **params)
    try:
        return capi.compute(h, x, t, pw, out_shape=out_shape, grad=grad, grad_scale=grad_scale,
                            grad_dtype=grad_dtype)
    finally:
        capi.destroy(h)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_every_kind_matches_the_c_api(case, capi, rng):
    kind, params = case
    x, t = make_inputs(kind, params, rng, ignore="ignore_index" in params)
    loss = getattr(culoss, kind)(**params)
    value, grad = loss(x, t, grad_scale=0.75)
    assert isinstance(value, np.ndarray) and isinstance(grad, np.ndarray)
    assert value.dtype == np.float64 and grad.dtype == np.float64
    assert grad.shape == x.shape
    ref_value, ref_grad = direct(capi, kind, params, x, t, out_shape=value.shape,
                                 grad_scale=0.75)
    np.testing.assert_array_equal(value, ref_value)  # same library, same call: bitwise
    np.testing.assert_array_equal(grad, ref_grad)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_float32_pixel_weight_channels_last(case, capi, rng):
    kind, params = case
    x, t = make_inputs(kind, params, rng, dtype=np.float32)
    pw = rng.uniform(0.0, 2.0, size=(x.shape[0],) + x.shape[2:]).astype(np.float32)
    # the same problem with the classes last (NHWC, class_axis=-1)
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    t_last = np.ascontiguousarray(np.moveaxis(t, 1, -1)) if t.ndim == x.ndim else t
    p = dict(params, class_axis=-1)
    value, grad = getattr(culoss, kind)(**p)(x_last, t_last, pw)
    assert value.dtype == np.float32 and grad.dtype == np.float32
    ref_value, ref_grad = direct(capi, kind, p, x_last, t_last, pw, out_shape=value.shape)
    np.testing.assert_array_equal(value, ref_value)
    np.testing.assert_array_equal(grad, ref_grad)
    # and equal (up to summation order) to the channels-first call
    v1, g1 = getattr(culoss, kind)(**params)(x, t, pw)
    if value.ndim == x.ndim:  # element-wise values have the input's layout
        value = np.moveaxis(value, -1, 1)
    np.testing.assert_allclose(value, v1, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(np.moveaxis(grad, -1, 1), g1, rtol=2e-4, atol=1e-6)


def test_bce_notebook_case():
    # the weighted-loss notebook: probabilities, batch-frequency class balancing, SUM
    x = np.array([[0.3, 0.7]] * 5)
    t = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float64)
    loss = culoss.BCE(activation="none", class_balance="batch_frequency", reduction="sum")
    value, grad = loss(x, t, grad=False)
    assert grad is None
    assert value.shape == () and value.dtype == np.float64
    assert float(value) == pytest.approx(2.4970363972234698, rel=1e-12)
    per_class, _ = loss.replace(reduction="none")(x, t, grad=False)
    assert per_class.shape == (5, 2)
    np.testing.assert_allclose(per_class.sum(axis=0), [1.2485181986117349] * 2, rtol=1e-12)


def _softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _one_hot(t, c):
    return np.moveaxis(np.eye(c)[t], -1, 1)


def test_dice_matches_the_formula(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    t = rng.integers(0, 3, (2, 6, 5))
    p, y = _softmax(x), _one_hot(t, 3)
    s = 1e-5
    inter = (p * y).sum(axis=(2, 3))
    denom = p.sum(axis=(2, 3)) + y.sum(axis=(2, 3))
    ref = 1 - (2 * inter + s) / (denom + s)
    value, _ = culoss.Dice(reduction="none")(x, t)
    np.testing.assert_allclose(value, ref, rtol=1e-12)
    value, _ = culoss.Dice()(x, t)
    assert float(value) == pytest.approx(ref.mean(), rel=1e-12)


def test_cross_entropy_matches_the_formula(rng):
    x = rng.standard_normal((4, 5))
    t = rng.integers(0, 5, 4)
    ref = -np.log(_softmax(x))[np.arange(4), t].mean()
    value, grad = culoss.CrossEntropy()(x, t)
    assert float(value) == pytest.approx(ref, rel=1e-12)
    np.testing.assert_allclose(grad, (_softmax(x) - np.eye(5)[t]) / 4, rtol=1e-10, atol=1e-15)


def test_bce_and_sigmoid_focal_match_the_formula(rng):
    x = rng.standard_normal((3, 2, 7))
    t = (rng.uniform(size=x.shape) < 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    value, grad = culoss.BCE()(x, t)
    assert float(value) == pytest.approx(ce.mean(), rel=1e-12)
    np.testing.assert_allclose(grad, (p - t) / x.size, rtol=1e-10)
    pt = p * t + (1 - p) * (1 - t)
    at = 0.25 * t + 0.75 * (1 - t)
    value, _ = culoss.Focal()(x, t, grad=False)
    assert float(value) == pytest.approx((at * ce * (1 - pt) ** 2).mean(), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes(dtype, capi, rng):
    x, t = make_inputs("CrossEntropy", {}, rng, dtype=dtype)
    value, grad = culoss.CrossEntropy()(x, t)
    assert value.dtype == (np.float64 if dtype == np.float64 else np.float32)
    assert grad.dtype == dtype
    ref_value, ref_grad = direct(capi, "CrossEntropy", {}, x, t)
    np.testing.assert_array_equal(value, ref_value)
    np.testing.assert_array_equal(grad, ref_grad)
    # float32 gradient for a float16 input
    _, g32 = culoss.CrossEntropy()(x, t, grad_dtype="float32")
    assert g32.dtype == np.float32
    _, ref_g32 = direct(capi, "CrossEntropy", {}, x, t, grad_dtype=np.float32)
    np.testing.assert_array_equal(g32, ref_g32)


@pytest.mark.parametrize("tdtype", [np.uint8, np.int32, np.int64])
def test_index_target_dtypes(tdtype, rng):
    x = rng.standard_normal((2, 3, 8))
    t = rng.integers(0, 3, (2, 8))
    ref, _ = culoss.Dice()(x, t.astype(np.int64))
    value, _ = culoss.Dice()(x, t.astype(tdtype))
    assert float(value) == float(ref)


def test_bool_and_uint8_dense_targets(rng):
    x = rng.standard_normal((2, 1, 16))
    mask = rng.uniform(size=x.shape) < 0.3
    ref, gref = culoss.BCE()(x, mask.astype(np.float64))
    for t in (mask, mask.astype(np.uint8)):
        value, grad = culoss.BCE()(x, t)
        assert float(value) == float(ref)
        np.testing.assert_array_equal(grad, gref)


def test_grad_scale_and_forward_only(rng):
    x, t = make_inputs("Dice", {}, rng)
    v1, g1 = culoss.Dice()(x, t)
    v2, g2 = culoss.Dice()(x, t, None, True, -2.5)
    v3, g3 = culoss.Dice()(x, t, grad=False)
    assert float(v1) == float(v2) == float(v3)
    np.testing.assert_allclose(g2, -2.5 * g1, rtol=1e-13)
    assert g3 is None


def test_gradient_in_place_and_into_a_buffer(rng):
    x, t = make_inputs("CrossEntropy", {}, rng)
    v, g = culoss.CrossEntropy()(x, t)
    buf = np.empty_like(x)
    v2, g2 = culoss.CrossEntropy()(x, t, grad_out=buf)
    assert g2 is buf
    np.testing.assert_array_equal(buf, g)
    logits = x.copy()
    v3, g3 = culoss.CrossEntropy()(logits, t, grad_out=logits)  # overwrites the logits
    assert g3 is logits
    np.testing.assert_array_equal(logits, g)
    assert float(v3) == float(v)


def test_empty_batch_and_all_ignored(rng):
    x = np.zeros((0, 3, 4))
    t = np.zeros((0, 4), dtype=np.int64)
    value, grad = culoss.CrossEntropy()(x, t)
    assert float(value) == 0.0 and grad.shape == (0, 3, 4)
    x = rng.standard_normal((2, 3, 4))
    t = np.full((2, 4), -100, dtype=np.int64)
    value, grad = culoss.CrossEntropy()(x, t)
    assert float(value) == 0.0 and not grad.any()


def test_workspace_size(rng):
    x, t = make_inputs("Dice", {}, rng)
    assert culoss.Dice().workspace_size(x, t) >= 256


def test_non_contiguous_input_is_refused_not_copied(rng):
    x = rng.standard_normal((2, 4, 3)).transpose(0, 2, 1)  # (2, 3, 4), not compact
    t = rng.integers(0, 3, (2, 4))
    with pytest.raises(culoss.NotSupportedError, match="not compact"):
        culoss.Dice()(x, t)


def test_results_are_deterministic(rng):
    x, t = make_inputs("GeneralizedDice", {}, rng, shape=(3, 4, 16, 16), dtype=np.float32)
    a = culoss.GeneralizedDice()(x, t)
    b = culoss.GeneralizedDice()(x, t)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_threads_share_a_descriptor(rng):
    from concurrent.futures import ThreadPoolExecutor
    x, t = make_inputs("Dice", {}, rng, shape=(4, 3, 32, 32))
    loss = culoss.Dice()
    ref = loss(x, t)
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: loss(x, t), range(8)))
    for v, g in results:
        np.testing.assert_array_equal(v, ref[0])
        np.testing.assert_array_equal(g, ref[1])


def test_views_with_an_offset(rng):
    big = rng.standard_normal((3, 3, 4, 5))
    labels = rng.integers(0, 3, (3, 4, 5))
    x, t = big[1:], labels[1:]  # compact views that start inside their buffers
    v, g = culoss.Dice()(x, t)
    v2, g2 = culoss.Dice()(x.copy(), t.copy())
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(g, g2)
