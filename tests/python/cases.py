"""The loss configurations the tests run: every kind, with the options that change its path."""

import numpy as np

BINARY_KINDS = {"BCE", "Combo", "LovaszHinge"}

# (kind, keyword arguments); targets: dense 0/1 for binary problems, class indices otherwise
CASES = [
    ("Dice", {}),
    ("Dice", {"include_background": False, "batch": True}),
    ("Dice", {"squared_denominator": True, "average": "micro", "reduction": "none"}),
    ("Dice", {"activation": "sigmoid", "reduction": "none", "smooth_nr": 0.0}),
    ("Dice", {"reduction": "none", "skip_empty": True}),
    ("Jaccard", {}),
    ("Jaccard", {"reduction": "sum", "class_weights": [1.0, 2.0, 0.5]}),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}),
    ("Tversky", {"reduction": "none", "batch": True}),
    ("FocalTversky", {}),
    ("FocalTversky", {"gamma": 1.5, "activation": "none"}),
    ("GeneralizedDice", {}),
    ("GeneralizedDice", {"weight_type": "simple", "reduction": "none"}),
    ("GeneralizedDice", {"weight_type": "uniform", "batch": True}),
    ("BCE", {}),
    ("BCE", {"pos_weight": [2.0, 1.0, 0.5], "label_smoothing": 0.1}),
    ("BCE", {"class_balance": "batch_frequency", "reduction": "none"}),
    ("CrossEntropy", {}),
    ("CrossEntropy", {"class_weights": [0.2, 1.0, 3.0], "label_smoothing": 0.05,
                      "ignore_index": 255}),
    ("CrossEntropy", {"reduction": "none"}),
    ("Focal", {}),
    ("Focal", {"activation": "softmax", "gamma": 1.0}),
    ("Focal", {"reduction": "none", "alpha": -1.0, "gamma": 0.5}),
    ("Combo", {}),
    ("Combo", {"ce_ratio": 0.3, "alpha": 0.7, "include_background": False}),
    ("MarginalCrossEntropy", {}),
    ("MarginalCrossEntropy", {"reduction": "none"}),
    ("LovaszHinge", {}),
    ("LovaszHinge", {"per_image": True, "reduction": "none"}),
    ("LovaszSoftmax", {}),
    ("LovaszSoftmax", {"classes": "all", "per_image": True, "reduction": "none"}),
    ("MCC", {}),
    ("MCC", {"soft_label": True, "average": "micro", "batch": True, "reduction": "none"}),
    ("MCC", {"activation": "sigmoid", "include_background": False, "skip_empty": True}),
    ("Dice", {"soft_label": True, "activation": "none", "reduction": "sum"}),
    ("Tversky", {"soft_label": True, "activation": "sigmoid", "alpha": 0.3, "beta": 0.7}),
    ("TopKCrossEntropy", {}),
    ("TopKCrossEntropy", {"top_fraction": 0.3, "class_weights": [0.2, 1.0, 3.0],
                          "label_smoothing": 0.05, "ignore_index": 255}),
    ("HausdorffDT", {}),
    ("HausdorffDT", {"include_background": False, "reduction": "none", "alpha": 1.5}),
    ("Boundary", {}),
    ("Boundary", {"reduction": "sum", "activation": "sigmoid"}),
    ("ClDice", {}),
    ("ClDice", {"average": "micro", "iterations": 2, "reduction": "none"}),
]


def is_binary(kind, params):
    return kind in BINARY_KINDS or (
        kind == "Focal" and params.get("activation", "sigmoid") != "softmax") or (
        params.get("activation") == "sigmoid")


def case_id(case):
    kind, params = case
    return kind + ("-" + "-".join("%s=%s" % kv for kv in sorted(params.items())) if params else "")


def make_inputs(kind, params, rng, shape=(2, 3, 4, 5), dtype=np.float64, ignore=False):
    """(input, target) for a case: logits (probabilities with activation none) and a dense
    0/1 target for binary problems, int64 class indices otherwise."""
    n, c = shape[0], shape[1]
    spatial = shape[2:]
    if params.get("activation") == "none":
        x = rng.uniform(0.05, 0.95, size=shape)
        if not is_binary(kind, params):
            x = x / x.sum(axis=1, keepdims=True)
    else:
        x = rng.standard_normal(shape) * 1.5
    x = x.astype(dtype)
    if is_binary(kind, params):
        t = (rng.uniform(size=shape) < 0.4).astype(dtype)
    else:
        t = rng.integers(0, c, size=(n,) + spatial).astype(np.int64)
        if ignore:
            t[..., 0] = params.get("ignore_index", -100)
    return x, t
