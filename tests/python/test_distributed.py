"""Data parallelism: Loss.stats / Loss.from_stats on shards of a batch against one call on the
whole batch (NumPy), and culoss.torch's distributed modules in 2 processes (gloo).

The 2-process test is marked ``distributed`` (deselect it with ``-m "not distributed"``)."""

import os
import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import culoss
from cases import CASES, case_id, make_inputs
from conftest import optional_import

torch = optional_import("torch")


# ----------------------------------------------------------------------------- NumPy

def _shards(n, parts):
    """Unequal slices covering range(n)."""
    cuts = np.linspace(0, n, parts + 1).astype(int)
    cuts[1] = max(cuts[1] - 1, 1)  # make the first shard the smallest
    return [slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


def _sharded(loss, x, t, pw, parts):
    """(values, grads) of each shard via stats -> sum -> from_stats."""
    shards = _shards(x.shape[0], parts)
    count = loss.stats_size(x, t)
    # the length does not depend on the shard's N
    assert [loss.stats_size(x[s], t[s]) for s in shards] == [count] * len(shards)
    stats = [loss.stats(x[s], t[s], None if pw is None else pw[s]) for s in shards]
    for st in stats:
        assert isinstance(st, np.ndarray) and st.dtype == np.float64 and st.shape == (count,)
    total = np.sum(stats, axis=0)
    outs = [loss.from_stats(x[s], t[s], total, None if pw is None else pw[s]) for s in shards]
    return shards, [o[0] for o in outs], [o[1] for o in outs]


def _check_against_full(loss, x, t, pw=None, parts=3, rtol=1e-9, atol=1e-12):
    value, grad = loss(x, t, pw)
    shards, values, grads = _sharded(loss, x, t, pw, parts)
    axes = loss.output_axes(x.ndim) or ()
    if axes and axes[0] == 0:  # values per image: each shard writes its own rows
        np.testing.assert_allclose(np.concatenate(values), value, rtol=rtol, atol=atol)
    else:  # one value for the global batch, the same on every shard
        for v in values:
            np.testing.assert_allclose(v, value, rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.concatenate(grads), grad, rtol=rtol, atol=atol)


def _inputs(kind, params, rng, n=7, shape_rest=(3, 4, 5)):
    return make_inputs(kind, params, rng, shape=(n,) + shape_rest)


# the kinds the brief names, with the options that make their statistics global
NAMED = [
    ("Dice", {"batch": True}),
    ("Dice", {"batch": True, "include_background": False, "skip_empty": True}),
    ("GeneralizedDice", {}),
    ("GeneralizedDice", {"batch": True, "weight_type": "simple"}),
    ("CrossEntropy", {"class_weights": [0.2, 1.0, 3.0], "ignore_index": 1}),
    ("CrossEntropy", {"class_weights": [0.5, 2.0, 1.0], "ignore_index": 255,
                      "label_smoothing": 0.1}),
    ("BCE", {"class_balance": "batch_frequency"}),
    ("Combo", {}),
    ("Combo", {"batch": True, "ce_ratio": 0.3}),
    ("MarginalCrossEntropy", {}),
    ("LovaszSoftmax", {"per_image": True}),
    ("LovaszHinge", {"per_image": True}),
]
REGION = ("Dice", "Jaccard", "Tversky", "FocalTversky", "GeneralizedDice", "MCC")


def _region_none(case):
    # libculoss (CPU, as of the statistics API's first version) crashes with a segmentation
    # fault in culoss_compute_stats for a region kind with reduction="none": these run in a
    # subprocess (test_region_none_in_subprocess) so that a crash cannot take pytest down
    return case[0] in REGION and case[1].get("reduction") == "none"


# every configuration of the general cases that the statistics API serves
GENERAL = [c for c in CASES if not (c[0].startswith("Lovasz") and not c[1].get("per_image"))
           and not _region_none(c) and c[0] != "TopKCrossEntropy"]
REGION_NONE = [c for c in CASES if _region_none(c)] + [("GeneralizedDice",
                                                        {"reduction": "none", "batch": True})]


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("case", NAMED, ids=case_id)
def test_shards_match_one_call(case, parts, rng):
    kind, params = case
    x, t = _inputs(kind, params, rng)
    if kind == "CrossEntropy":
        t[0, 0, :2] = params["ignore_index"]  # some ignored pixels (in the first shard)
    _check_against_full(getattr(culoss, kind)(**params), x, t, parts=parts)


@pytest.mark.parametrize("case", GENERAL, ids=case_id)
def test_general_cases(case, rng):
    kind, params = case
    x, t = _inputs(kind, params, rng)
    _check_against_full(getattr(culoss, kind)(**params), x, t, parts=2)


_SUBPROCESS_CHECK = """
import sys
sys.path[:0] = %r
sys.modules["torch"] = None  # not needed here: saves its import time
import numpy as np
import culoss
import test_distributed as td
from cases import make_inputs
kind, params = %r
x, t = make_inputs(kind, params, np.random.default_rng(5), shape=(7, 3, 4, 5))
td._check_against_full(getattr(culoss, kind)(**params), x, t, parts=2)
print("ok")
"""


@pytest.mark.parametrize("case", REGION_NONE, ids=case_id)
def test_region_none_in_subprocess(case):
    # the child imports the same culoss (and these helpers) as this process
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(culoss.__file__)))
    code = _SUBPROCESS_CHECK % ([os.path.dirname(os.path.abspath(__file__)), package_parent],
                                case)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the check did not finish in 120 s")
    if r.returncode < 0:
        pytest.xfail("libculoss crashed (signal %d) in the statistics API for a region loss "
                     "with reduction='none' (a library bug)" % -r.returncode)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def test_pixel_weight(rng):
    x, t = _inputs("Dice", {}, rng)
    pw = rng.uniform(0, 2, size=(x.shape[0],) + x.shape[2:]).astype(np.float32)
    _check_against_full(culoss.Dice(batch=True), x, t, pw)
    _check_against_full(culoss.CrossEntropy(class_weights=[1.0, 2.0, 0.5]), x, t, pw)


def test_sum(rng):
    x, t = _inputs("Dice", {}, rng)
    loss = (culoss.Dice(batch=True) + 0.5 * culoss.CrossEntropy(class_weights=[1, 2, 3])
            + 0.25 * culoss.GeneralizedDice())
    _check_against_full(loss, x, t, parts=3)


def test_float32_and_grad_options(rng):
    x, t = _inputs("Dice", {}, rng)
    x = x.astype(np.float32)
    loss = culoss.Dice(batch=True)
    value, grad = loss(x, t, grad_scale=2.0)
    shards = _shards(x.shape[0], 2)
    total = sum(loss.stats(x[s], t[s]) for s in shards)
    assert total.dtype == np.float64
    parts = [loss.from_stats(x[s], t[s], total, grad_scale=2.0) for s in shards]
    for v, g in parts:
        assert v.dtype == np.float32 and g.dtype == np.float32
        np.testing.assert_allclose(v, value, rtol=1e-5)
    np.testing.assert_allclose(np.concatenate([g for _, g in parts]), grad, rtol=1e-4,
                               atol=1e-7)
    v, g = loss.from_stats(x[shards[0]], t[shards[0]], total, grad=False)
    assert g is None
    np.testing.assert_allclose(v, value, rtol=1e-5)
    out = np.empty_like(x[shards[1]])
    v, g = loss.from_stats(x[shards[1]], t[shards[1]], total, grad_out=out, grad_scale=2.0)
    assert g is out
    np.testing.assert_allclose(out, grad[shards[1]], rtol=1e-4, atol=1e-7)


def test_pooled_lovasz_not_supported(rng):
    for kind in ("LovaszSoftmax", "LovaszHinge"):
        params = {}
        x, t = _inputs(kind, params, rng)
        loss = getattr(culoss, kind)()
        with pytest.raises(culoss.NotSupportedError):
            loss.stats_size(x, t)
        with pytest.raises(culoss.NotSupportedError):
            loss.stats(x, t)
        with pytest.raises(culoss.NotSupportedError):
            loss.from_stats(x, t, np.zeros(4))


def test_topk_cross_entropy_not_supported(rng):
    # its threshold is taken over the whole batch: no statistics to sum
    x, t = _inputs("TopKCrossEntropy", {}, rng)
    loss = culoss.TopKCrossEntropy()
    for call in (lambda: loss.stats_size(x, t), lambda: loss.stats(x, t),
                 lambda: loss.from_stats(x, t, np.zeros(4))):
        with pytest.raises(culoss.NotSupportedError, match="threshold is global"):
            call()
    with pytest.raises(culoss.NotSupportedError, match="threshold is global"):
        (culoss.Dice() + loss).stats(x, t)


def test_bad_stats(rng):
    x, t = _inputs("Dice", {}, rng)
    loss = culoss.Dice(batch=True)
    n = loss.stats_size(x, t)
    with pytest.raises(culoss.ShapeMismatchError):
        loss.from_stats(x, t, np.zeros(n + 1))
    with pytest.raises(culoss.UnsupportedDtypeError):
        loss.from_stats(x, t, np.zeros(n, dtype=np.float32))
    with pytest.raises(TypeError):
        loss.from_stats(x, t, None)


# ----------------------------------------------------------------------------- PyTorch

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_batch():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 3, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (5, 6, 6), generator=g)
    y[1, 0, :3] = 255
    return x, y


RANK_SLICES = [slice(0, 3), slice(3, 5)]  # unequal shards


def _torch_losses():
    import culoss.torch as ct
    return [
        ("dice_batch", lambda **kw: ct.DiceLoss(batch=True, ignore_index=255, **kw), None),
        ("ce_weights", lambda **kw: ct.CrossEntropyLoss(class_weights=[0.5, 2.0, 1.0],
                                                        ignore_index=255, **kw), None),
        ("sum", lambda **kw: ct.LossModule(culoss.Dice(batch=True, ignore_index=255) +
                                           0.5 * culoss.CrossEntropy(ignore_index=255), **kw),
         None),
        # reduction="none": each rank's own rows (per pixel)
        ("ce_none", lambda **kw: ct.CrossEntropyLoss(reduction="none", ignore_index=255, **kw),
         "rows"),
        ("lovasz_none", lambda **kw: ct.LovaszSoftmaxLoss(reduction="none", per_image=True,
                                                          ignore_index=255, **kw), "rows"),
    ]


def _worker(rank, world, init_method, result_dir):
    import datetime

    import torch.distributed as dist

    import culoss.torch as ct
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=20))
    try:
        x, y = _global_batch()
        s = RANK_SLICES[rank]
        res = {}
        # the default group, and an explicit ProcessGroup
        res["default"] = _run_losses(x[s], y[s], distributed=True, _offset=s.start)
        group = dist.new_group(list(range(world)))
        res["group"] = _run_losses(x[s], y[s], process_group=group, _offset=s.start)
        try:
            ct.LovaszSoftmaxLoss(distributed=True, ignore_index=255)(x[s].requires_grad_(), y[s])
            res["lovasz"] = "no error"
        except culoss.NotSupportedError:
            res["lovasz"] = "NotSupportedError"
        with open(os.path.join(result_dir, "rank%d.pkl" % rank), "wb") as f:
            pickle.dump(res, f)
    finally:
        dist.destroy_process_group()


def _run_losses(x, y, **kw):
    """{name: (value, grad)} for each loss of _torch_losses on (x, y); the backward uses a
    grad_output that differs per row for the per-image case (rows numbered globally)."""
    offset = kw.pop("_offset", 0)
    out = {}
    for name, make, how in _torch_losses():
        xi = x.clone().requires_grad_(True)
        value = make(**kw)(xi, y)
        if how == "rows":
            rows = torch.arange(offset, offset + value.shape[0], dtype=value.dtype) + 1
            rest = value.shape[1:]
            w = (rows.reshape((-1,) + (1,) * len(rest)) *
                 torch.arange(1, value[0].numel() + 1, dtype=value.dtype).reshape(rest))
        else:
            w = torch.full_like(value, 3.0)
        (value * w).sum().backward()
        out[name] = (value.detach().numpy(), xi.grad.numpy())
    return out


@pytest.mark.distributed
@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_torch_two_processes(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as tmp
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    init_method = "tcp://127.0.0.1:%d" % _free_port()
    ctx = tmp.start_processes(_worker, args=(2, init_method, str(tmp_path)), nprocs=2,
                              join=False, start_method="spawn")
    deadline = time.monotonic() + 60  # a rank that fails leaves the other in a collective
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the distributed workers did not finish in time")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join(5)
    results = []
    for r in range(2):
        with open(tmp_path / ("rank%d.pkl" % r), "rb") as f:
            results.append(pickle.load(f))

    x, y = _global_batch()
    full = _run_losses(x, y)
    for mode in ("default", "group"):
        for name, _make, how in _torch_losses():
            v_full, g_full = full[name]
            vals = [results[r][mode][name][0] for r in range(2)]
            grads = [results[r][mode][name][1] for r in range(2)]
            if how == "rows":
                np.testing.assert_allclose(np.concatenate(vals), v_full, rtol=1e-9, atol=1e-12)
            else:
                for v in vals:
                    np.testing.assert_allclose(v, v_full, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(np.concatenate(grads), g_full, rtol=1e-9, atol=1e-12,
                                       err_msg="%s %s" % (mode, name))
    assert results[0]["lovasz"] == results[1]["lovasz"] == "NotSupportedError"


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_torch_distributed_needs_init():
    import torch.distributed as dist

    import culoss.torch as ct
    if dist.is_available() and dist.is_initialized():
        pytest.skip("a process group is already initialized")
    m = ct.DiceLoss(distributed=True)
    assert m.distributed and m.process_group is None
    x, y = _global_batch()
    with pytest.raises(RuntimeError, match="init_process_group"):
        m(x, y)
    assert not ct.DiceLoss().distributed
    with pytest.raises(TypeError):
        ct.DiceLoss(distributed="yes")
