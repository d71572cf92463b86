"""Keyword arguments, their mapping onto culoss parameters, and weighted sums."""

import copy
import inspect
import pickle

import numpy as np
import pytest

import culoss
from culoss import _loss
from cases import make_inputs

KINDS = ["Dice", "Jaccard", "Tversky", "FocalTversky", "GeneralizedDice", "BCE", "CrossEntropy",
         "Focal", "Combo", "MarginalCrossEntropy", "LovaszHinge", "LovaszSoftmax", "MCC",
         "HausdorffDT", "Boundary", "ClDice", "TopKCrossEntropy"]


def test_one_class_per_kind():
    for name in KINDS:
        cls = getattr(culoss, name)
        assert issubclass(cls, culoss.Loss)
        assert cls.__name__ == name
        # the keywords show in the signature
        params = list(inspect.signature(cls).parameters)
        assert params == list(_loss.KIND_PARAMS[cls.kind])


# a non-default value for every parameter, as a Python value and as culoss reads it back
VALUES = {
    "activation": ("none", "none"), "class_axis": (-1, -1), "reduction": ("sum", "sum"),
    "ignore_index": (255, 255), "smooth_nr": (0.25, 0.25), "smooth_dr": (0.5, 0.5),
    "squared_denominator": (True, True), "batch": (True, True),
    "include_background": (False, False), "alpha": (0.2, 0.2), "beta": (0.9, 0.9),
    "gamma": (1.25, 1.25), "weight_type": ("Simple", "simple"),
    "class_balance": ("batch_frequency", "batch_frequency"), "label_smoothing": (0.1, 0.1),
    "ce_ratio": (0.3, 0.3), "per_image": (1, True), "classes": ("all", "all"),
    "skip_empty": (True, True), "average": ("micro", "micro"), "check_targets": (False, False),
    "soft_label": (True, True),
    "top_fraction": (0.25, 0.25),
    "iterations": (7, 7),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_keyword_reaches_its_c_parameter(kind, capi):
    cls = getattr(culoss, kind)
    for name in _loss.KIND_PARAMS[cls.kind]:
        if name in ("class_weights", "pos_weight", "spacing"):
            continue
        value, expected = VALUES[name]
        if kind in ("Combo", "TopKCrossEntropy") and name == "reduction":
            value, expected = "mean", "mean"
        loss = cls(**{name: value})
        assert loss.get(name) == expected, name
        # and through the independent C layer: the raw value of that culoss_param
        pid, ptype = _loss.PARAMS[name]
        if ptype == "float":
            raw = capi.get_float(loss._handle.ptr, name)
            assert raw == expected
        else:
            raw = capi.get_int(loss._handle.ptr, name)
            if ptype == "enum":
                assert raw == _loss._ENUMS[name][expected]
            else:
                assert raw == int(expected)


def test_defaults_come_from_culoss():
    assert culoss.Dice().get("activation") == "softmax"
    assert culoss.BCE().get("activation") == "sigmoid"
    assert culoss.Focal().get("alpha") == 0.25 and culoss.Focal().get("gamma") == 2.0
    ft = culoss.FocalTversky()
    assert (ft.get("alpha"), ft.get("beta"), ft.get("gamma")) == (0.3, 0.7, 0.75)
    assert culoss.Dice().get("smooth_nr") == 1e-5
    assert culoss.LovaszSoftmax().get("classes") == "present"
    assert culoss.Dice(activation=None).get("activation") == "softmax"  # None: the default


def test_list_parameters(rng):
    x, t = make_inputs("Dice", {}, rng)
    a = culoss.Dice(class_weights=[1.0, 2.0, 0.0])
    b = culoss.Dice(class_weights=np.array([1, 2, 0]))
    c = culoss.Dice(class_weights=(1, 2.0, 0))
    assert a.get("class_weights") == [1.0, 2.0, 0.0]
    va, vb, vc = (loss(x, t, grad=False)[0] for loss in (a, b, c))
    assert float(va) == float(vb) == float(vc) != float(culoss.Dice()(x, t, grad=False)[0])
    with pytest.raises(culoss.ShapeMismatchError, match="CLASS_WEIGHTS"):
        culoss.Dice(class_weights=[1.0, 2.0])(x, t)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"alpha": 0.5}, TypeError, "unexpected keyword argument 'alpha'"),
    ({"squared": True}, TypeError, "unexpected keyword argument 'squared'"),
    ({"activation": 1}, TypeError, "must be a string"),
    ({"activation": "relu"}, ValueError, "activation='relu'"),
    ({"reduction": "avg"}, ValueError, "'mean', 'sum', 'none'"),
    ({"batch": "yes"}, TypeError, "must be a bool"),
    ({"batch": 2}, ValueError, "must be a bool"),
    ({"class_axis": 1.5}, TypeError, "must be an int"),
    ({"class_axis": True}, TypeError, "must be an int"),
    ({"class_axis": 99}, ValueError, "class_axis"),
    ({"smooth_nr": -1.0}, ValueError, ">= 0"),
    ({"smooth_dr": float("nan")}, ValueError, "finite"),
    ({"smooth_dr": "0.1"}, TypeError, "real number"),
    ({"class_weights": 1.0}, TypeError, "sequence"),
    ({"class_weights": []}, ValueError, "at least one"),
    ({"class_weights": [1.0, -1.0]}, ValueError, r"class_weights\[1\]"),
    ({"class_weights": [1.0, "a"]}, TypeError, r"class_weights\[1\]"),
])
def test_bad_keywords_fail_before_any_c_call(kwargs, exc, match, monkeypatch):
    def no_c_call(*a, **k):
        raise AssertionError("reached the C library")

    monkeypatch.setattr(_loss, "_Handle", no_c_call)
    with pytest.raises(exc, match=match):
        culoss.Dice(**kwargs)


@pytest.mark.parametrize("kind, kwargs, match", [
    ("BCE", {"activation": "softmax"}, "'none', 'sigmoid'"),
    ("CrossEntropy", {"activation": "sigmoid"}, "'none', 'softmax'"),
    ("Combo", {"reduction": "sum"}, "'mean'"),
    ("Focal", {"alpha": 1.5}, "at most 1"),
    ("Combo", {"alpha": 1.5}, r"in \[0, 1\]"),
    ("Combo", {"ce_ratio": -0.1}, r"in \[0, 1\]"),
    ("BCE", {"label_smoothing": 1.0}, r"in \[0, 1\)"),
    ("LovaszHinge", {"activation": "none"}, "unexpected keyword"),
    ("TopKCrossEntropy", {"top_fraction": 0.0}, r"in \(0, 1\]"),
    ("TopKCrossEntropy", {"top_fraction": 1.5}, r"in \(0, 1\]"),
    ("TopKCrossEntropy", {"top_fraction": float("nan")}, "finite"),
    ("TopKCrossEntropy", {"reduction": "none"}, "'mean'"),
    ("CrossEntropy", {"top_fraction": 0.5}, "unexpected keyword"),
    ("GeneralizedDice", {"average": "micro"}, "unexpected keyword"),
])
def test_kind_specific_refusals(kind, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        getattr(culoss, kind)(**kwargs)


def test_call_argument_checks(rng):
    x, t = make_inputs("Dice", {}, rng)
    loss = culoss.Dice()
    with pytest.raises(ValueError, match="grad_scale"):
        loss(x, t, grad_scale=float("inf"))
    with pytest.raises(TypeError, match="grad_scale"):
        loss(x, t, grad_scale="1")
    with pytest.raises(TypeError, match="grad must be a bool"):
        loss(x, t, grad=1)
    with pytest.raises(ValueError, match="grad_dtype"):
        loss(x, t, grad_dtype="float16")
    with pytest.raises(TypeError, match="target"):
        loss(x, None)


def test_replace_and_repr():
    d = culoss.Dice(include_background=False)
    d2 = d.replace(batch=True)
    assert d2.get("batch") and not d2.get("include_background") and not d.get("batch")
    assert repr(d2) == "culoss.Dice(include_background=False, batch=True)"
    with pytest.raises(TypeError):
        culoss.Loss()


def test_pickle_and_copy_rebuild_the_descriptor(rng):
    x, t = make_inputs("Tversky", {}, rng)
    loss = culoss.Tversky(alpha=0.2, beta=0.8, class_weights=[1, 2, 3])
    for clone in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss),
                  culoss.from_spec(_loss.spec_json(loss))):
        assert clone is not loss and clone._handle is not loss._handle
        np.testing.assert_array_equal(clone(x, t)[1], loss(x, t)[1])


# ----------------------------------------------------------------------------- sums

def test_sum_is_the_weighted_sum_of_its_terms(rng):
    x, t = make_inputs("Dice", {}, rng)
    dice, ce = culoss.Dice(), culoss.CrossEntropy(label_smoothing=0.1)
    both = dice + 0.5 * ce
    assert isinstance(both, culoss.Sum)
    assert [w for w, _ in both.terms] == [1.0, 0.5]
    v, g = both(x, t)
    vd, gd = dice(x, t)
    vc, gc = ce(x, t)
    assert v.shape == ()
    assert float(v) == pytest.approx(float(vd) + 0.5 * float(vc), rel=1e-12)
    np.testing.assert_allclose(g, gd + 0.5 * gc, rtol=1e-10, atol=1e-15)


def test_sum_of_binary_terms_matches_the_c_api(rng, capi):
    x, t = make_inputs("BCE", {}, rng)
    both = culoss.Dice(activation="sigmoid") + 0.5 * culoss.BCE()
    v, g = both(x, t)
    h1 = capi.create("Dice", activation="sigmoid")
    h2 = capi.create("BCE")
    hs = capi.sum([(1.0, h1), (0.5, h2)])
    rv, rg = capi.compute(hs, x, t)
    for h in (h1, h2, hs):
        capi.destroy(h)
    np.testing.assert_array_equal(v, rv)
    np.testing.assert_array_equal(g, rg)


def test_sum_algebra_flattens():
    a, b, c = culoss.Dice(), culoss.Jaccard(), culoss.CrossEntropy()
    s = 2 * (a + 0.5 * b) + c * 3 - a / 4
    assert [(w, type(t).__name__) for w, t in s.terms] == [
        (2.0, "Dice"), (1.0, "Jaccard"), (3.0, "CrossEntropy"), (-0.25, "Dice")]
    assert sum([a, b]).terms == (a + b).terms
    assert [w for w, _ in (-a).terms] == [-1.0]
    s2 = culoss.Sum([a, (0.5, b + c)])
    assert [w for w, _ in s2.terms] == [1.0, 0.5, 0.5]
    with pytest.raises(TypeError):
        a + 1
    with pytest.raises(TypeError):
        a * "2"
    with pytest.raises(ValueError):
        a * float("nan")
    with pytest.raises(ValueError):
        culoss.Sum([])


def test_sum_refusals(rng):
    with pytest.raises(ValueError, match="reduction 'mean' or 'sum'"):
        culoss.Dice(reduction="none") + culoss.BCE()
    x, t = make_inputs("LovaszSoftmax", {}, rng)
    with pytest.raises(culoss.NotSupportedError, match="LOVASZ"):
        (culoss.LovaszSoftmax() + culoss.CrossEntropy())(x, t)
    with pytest.raises(culoss.InvalidArgumentError, match="IGNORE_INDEX"):
        (culoss.Dice(ignore_index=1) + culoss.CrossEntropy())(x, t)


def test_sum_check_targets(rng):
    x, t = make_inputs("Dice", {}, rng)
    t[0, 0, 0] = 7  # out of range
    s = culoss.Dice() + culoss.CrossEntropy()
    assert s.get("check_targets")
    with pytest.raises(culoss.InvalidTargetError):
        s(x, t)
    quiet = culoss.Dice(check_targets=False) + culoss.CrossEntropy(check_targets=False)
    assert not quiet.get("check_targets")
    quiet(x, t)  # the bad label counts as ignored
    assert not s.replace(check_targets=False).get("check_targets")


def test_output_shapes(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    t = rng.integers(0, 3, (2, 4, 5))
    tb = (rng.uniform(size=x.shape) < 0.5).astype(np.float64)
    expect = [
        (culoss.Dice(reduction="none"), t, (2, 3)),
        (culoss.Dice(reduction="none", batch=True), t, (3,)),
        (culoss.Dice(reduction="none", average="micro"), t, (2,)),
        (culoss.Dice(reduction="none", average="micro", batch=True), t, ()),
        (culoss.GeneralizedDice(reduction="none"), t, (2,)),
        (culoss.BCE(reduction="none"), tb, (2, 3, 4, 5)),
        (culoss.Focal(reduction="none"), tb, (2, 3, 4, 5)),
        (culoss.Focal(reduction="none", activation="softmax"), t, (2, 4, 5)),
        (culoss.CrossEntropy(reduction="none"), t, (2, 4, 5)),
        (culoss.CrossEntropy(reduction="none", class_axis=-1), np.zeros((2, 3, 4), "i8"),
         (2, 3, 4)),
        (culoss.MarginalCrossEntropy(reduction="none"), t, (2, 4, 5)),
        (culoss.LovaszHinge(reduction="none"), tb, (3,)),
        (culoss.LovaszHinge(reduction="none", per_image=True), tb, (2, 3)),
        (culoss.LovaszSoftmax(reduction="none"), t, ()),
        (culoss.LovaszSoftmax(reduction="none", per_image=True), t, (2,)),
        (culoss.CrossEntropy(reduction="sum"), t, ()),
    ]
    for loss, target, shape in expect:
        assert loss.output_shape(x.shape) == shape, loss
        value, _ = loss(x, target)
        assert value.shape == shape, loss


def test_the_issue_example(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    labels = rng.integers(0, 3, (2, 5, 5))
    loss = culoss.Dice(activation="softmax", include_background=False, batch=True)
    value, grad = loss(x, labels, pixel_weight=None, grad=True, grad_scale=1.0)
    assert value.shape == () and grad.shape == x.shape
    dense = np.ascontiguousarray(np.moveaxis(np.eye(3)[labels], -1, 1))
    both = culoss.Dice() + 0.5 * culoss.BCE()  # softmax and sigmoid terms: a dense target
    v, g = both(x, dense)
    v1, g1 = culoss.Dice()(x, dense)
    v2, g2 = culoss.BCE()(x, dense)
    assert float(v) == pytest.approx(float(v1) + 0.5 * float(v2), rel=1e-12)
    np.testing.assert_allclose(g, g1 + 0.5 * g2, rtol=1e-12, atol=1e-16)
    with pytest.raises(culoss.InvalidArgumentError, match="dense target"):
        both(x, labels)
