#!/usr/bin/env python3
"""culoss side by side with the PyTorch losses users pick today, forward + backward.

For each loss and shape: the median time of one forward + backward (loss value and the
gradient with respect to the logits), the speed-up of culoss over each competitor, the peak
device memory the call takes beyond its inputs, and the largest error against a float64
reference. Competitors run in PyTorch eager and under ``torch.compile``:

- MONAI (``monai.losses``), segmentation_models_pytorch (``smp.losses``), kornia
  (``kornia.losses``), torchvision's ``sigmoid_focal_loss``, ``torch.nn.functional``
  (BCE with logits, cross-entropy);
- an nnU-Net-style memory-efficient soft Dice, written here from its documented formula
  (softmax, one-hot target built without gradient, background dropped, per-image statistics,
  ``-(2I + s) / max(P + T + s, 1e-8)`` averaged);
- the multi-class focal loss (``focal_softmax``, γ = 2): MONAI's ``FocalLoss(use_softmax=True)``
  and the formula written here (``softmax_focal``);
- Dice + cross-entropy (``dice_ce``, culoss's fused ``Dice() + CrossEntropy()``): MONAI's
  ``DiceCELoss`` and that nnU-Net-style Dice plus ``F.cross_entropy``;
- nnU-Net's TopK cross-entropy (``topk_ce``: the per-voxel cross-entropy, the k% largest over
  the batch, their mean), written here from its formula with k = 25 (a whole number of voxels
  at every benchmark shape, where nnU-Net's int() and culoss's ceiling agree);
- the reference Lovász algorithm (Berman, Rannen Triki & Blaschko, CVPR 2018: sort the errors,
  dot them with the gradient of the Lovász extension of the Jaccard loss), written here in
  PyTorch, next to smp's ``LovaszLoss``.

Every competitor is configured to the definition culoss computes with the keywords shown
(bindings/python/README.md, "Differences from other libraries"; checked value and gradient by
tests/python/test_crosscheck.py); where a competitor differs by a constant factor or offset
the row says so and the error is taken after undoing it. Competitors are imported lazily: a
missing library is a note in the output, not a failure.

Timing: CUDA events around each forward + backward after a synchronize, an L2 flush (a 64 MiB
write) before each iteration outside the timed region, warm-up calls first (the compiled
versions' first call, the compilation, is reported apart); on the CPU ``time.perf_counter``.
Memory: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` minus the memory
allocated before the call (input, target and model state excluded; the gradient tensor the
call returns is included). Error: value |v - v_ref| / |v_ref| and gradient
max|g - g_ref| / max|g_ref| against culoss's float64 result on the same data (its CPU backend
by default; on the device for problems above --ref-cpu-max elements).

    python benchmarks/python/bench_vs_torch.py --device cuda --out benchmarks/results/h100
    python benchmarks/python/bench_vs_torch.py --device cpu --quick --out /tmp/bvt

Writes results.md, results.json and chart.png into --out (drawn by matplotlib when installed,
else by png_chart.py with the standard library only).
"""

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

GPU_SHAPES = "16x4x512x512,32x1x1024x1024,2x4x64x64"
QUICK_SHAPES = "2x4x32x32,4x1x32x32"
ALL_LOSSES = ["dice", "tversky", "gdice", "ce", "dice_ce", "bce", "focal", "focal_softmax",
              "lovasz_softmax", "lovasz_hinge", "mcc", "topk_ce", "hausdorff_dt", "cldice"]
SOFTMAX_LOSSES = {"dice", "tversky", "gdice", "ce", "dice_ce", "focal_softmax", "lovasz_softmax",
                  "topk_ce", "hausdorff_dt", "cldice"}


# ------------------------------------------------------------------------------ imports

_modules = {}
NOTES = []  # run-wide notes (missing libraries, ...)


def lazy(name):
    """The module, or None (noted once) when it is missing or fails to import."""
    if name not in _modules:
        try:
            _modules[name] = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
            _modules[name] = None
            NOTES.append("`%s` not importable (%s: %s): its rows are skipped"
                         % (name, type(exc).__name__, str(exc).splitlines()[0][:120]))
    return _modules[name]


def import_culoss():
    try:
        import culoss
    except ImportError:  # not installed: the source tree's package
        sys.path.insert(0, os.path.join(REPO, "bindings", "python"))
        import culoss
    import culoss.torch  # noqa: F401
    return culoss


# ------------------------------------------------------------------------------ own peers

def softmax_focal(x, labels, gamma):
    """The multi-class focal loss of Lin et al. from its formula: −(1 − p_t)^γ log p_t per
    pixel (p = softmax over the class axis, t the label), averaged over the pixels."""
    import torch
    logp = torch.log_softmax(x, 1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return (-(1.0 - logp.exp()) ** gamma * logp).mean()


def nnunet_style_soft_dice(x, y, smooth=1e-5, batch_dice=False, do_bg=False):
    """nnU-Net's memory-efficient soft Dice, from its documented formula.

    x: logits (N, C, ...); y: labels (N, 1, ...). Softmax over C; the one-hot target is built
    under no_grad (scatter) and the background channel dropped unless do_bg; intersection,
    predicted and target sums over the spatial axes (and the batch with batch_dice);
    dc = (2 I + smooth) / clip(P + T + smooth, 1e-8); the loss is -mean(dc).
    """
    import torch
    p = torch.softmax(x, 1)
    with torch.no_grad():
        onehot = torch.zeros_like(p, dtype=torch.bool).scatter_(1, y.long(), True)
        if not do_bg:
            onehot = onehot[:, 1:]
        sum_gt = onehot.sum(tuple(range(2, x.ndim))).to(p.dtype)
    if not do_bg:
        p = p[:, 1:]
    axes = tuple(range(2, x.ndim))
    intersect = (p * onehot).sum(axes)
    sum_pred = p.sum(axes)
    if batch_dice:
        intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
    dc = (2 * intersect + smooth) / torch.clip(sum_gt + sum_pred + smooth, 1e-8)
    return -dc.mean()


def nnunet_style_topk_ce(x, y, k=25):
    """nnU-Net's TopKLoss from its formula: cross-entropy per voxel, the int(k% of the voxels)
    largest over the batch, their mean."""
    import torch
    res = torch.nn.functional.cross_entropy(x, y, reduction="none")
    res, _ = torch.topk(res.view(-1), int(res.numel() * k / 100), sorted=False)
    return res.mean()


def _lovasz_grad(gt_sorted):
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors.

    gt_sorted: (..., P) 0/1 ground truth in the order of decreasing error. With g = Σ gt,
    J_i = 1 - (g - cumsum(gt)_i) / (g + cumsum(1 - gt)_i); the gradient is J_1, J_i - J_{i-1}.
    """
    import torch
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)


def reference_lovasz_softmax(x, y):
    """Lovász-Softmax (Berman et al. 2018, Alg. 1 with the softmax), all images pooled,
    mean over the classes present in the batch. x: logits (N, C, ...); y: labels (N, ...).
    The classes are sorted in one batched sort (C rows) rather than a Python loop."""
    import torch
    C = x.shape[1]
    p = torch.softmax(x, 1).movedim(1, -1).reshape(-1, C).t()  # (C, P)
    fg = torch.nn.functional.one_hot(y.reshape(-1).long(), C).t().to(p.dtype)  # (C, P)
    errors = (fg - p).abs()
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    fg_sorted = torch.gather(fg, 1, perm)
    losses = (errors_sorted * _lovasz_grad(fg_sorted)).sum(1)  # (C,)
    present = fg.sum(1) > 0
    return losses[present].mean()


def reference_lovasz_hinge(x, t):
    """Lovász hinge (Berman et al. 2018) on one channel per problem, all images pooled;
    mean over the channels. x: logits (N, C, ...); t: 0/1 target of the same shape."""
    C = x.shape[1]
    logits = x.movedim(1, -1).reshape(-1, C).t()  # (C, P)
    gt = t.movedim(1, -1).reshape(-1, C).t().to(logits.dtype)
    errors = 1 - logits * (2 * gt - 1)
    errors_sorted, perm = errors.sort(dim=1, descending=True)
    gt_sorted = gt.gather(1, perm)
    import torch
    return (torch.relu(errors_sorted) * _lovasz_grad(gt_sorted)).sum(1).mean()


# ------------------------------------------------------------------------------ registry

class Peer:
    """A competitor: fn(x, targets) -> scalar loss equal to scale * culoss(kind, kw) + offset."""

    def __init__(self, name, lib, kind, kw, fn, target="labels", scale=1.0, offset=0.0,
                 only2d=False, need_c1=False, note=""):
        self.name, self.lib, self.kind, self.kw, self.fn = name, lib, kind, kw, fn
        self.target, self.scale, self.offset = target, scale, offset
        self.only2d, self.need_c1, self.note = only2d, need_c1, note

    def config(self):
        return config_key(self.kind, self.kw)


def config_key(kind, kw):
    return "%s(%s)" % (kind, ", ".join("%s=%r" % kv for kv in sorted(kw.items())))


def peers_for(loss, shape):
    """The competitors of one loss (functions built lazily; None entries = library missing)."""
    import torch
    F = torch.nn.functional
    out = []

    def add(lib_name, make):
        mod = lazy(lib_name) if lib_name else None
        if lib_name and mod is None:
            return
        out.extend(make(mod))

    smp0 = {"smooth_nr": 0.0, "smooth_dr": 0.0, "batch": True}
    kor0 = {"smooth_nr": 0.0, "smooth_dr": 1e-8}
    if loss == "dice":
        add("monai.losses", lambda m: [Peer(
            "MONAI DiceLoss", "monai", "Dice", {},
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.DiceLoss(softmax=True, to_onehot_y=True)))])
        add("segmentation_models_pytorch.losses", lambda m: [Peer(
            "smp DiceLoss", "smp", "Dice", dict(smp0),
            (lambda f: lambda x, t: f(x, t["labels"]))(m.DiceLoss("multiclass")))])
        add("kornia.losses", lambda m: [Peer(
            "kornia dice_loss", "kornia", "Dice", dict(average="micro", **kor0),
            lambda x, t: m.dice_loss(x, t["labels"], average="micro"), only2d=True)])
        add(None, lambda m: [Peer(
            "nnU-Net-style soft Dice", "own", "Dice", {"include_background": False},
            lambda x, t: nnunet_style_soft_dice(x, t["labels_n1"]), offset=-1.0,
            note="returns -dice (culoss: 1 - dice)")])
    elif loss == "tversky":
        add("monai.losses", lambda m: [Peer(
            "MONAI TverskyLoss", "monai", "Tversky", {"alpha": 0.3, "beta": 0.7},
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7)))])
        add("segmentation_models_pytorch.losses", lambda m: [Peer(
            "smp TverskyLoss", "smp", "Tversky", dict(alpha=0.3, beta=0.7, **smp0),
            (lambda f: lambda x, t: f(x, t["labels"]))(
                m.TverskyLoss("multiclass", alpha=0.3, beta=0.7)))])
        add("kornia.losses", lambda m: [Peer(
            "kornia tversky_loss", "kornia", "Tversky", dict(alpha=0.3, beta=0.7, **kor0),
            lambda x, t: m.tversky_loss(x, t["labels"], 0.3, 0.7), only2d=True)])
    elif loss == "gdice":
        add("monai.losses", lambda m: [Peer(
            "MONAI GeneralizedDiceLoss", "monai", "GeneralizedDice", {},
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.GeneralizedDiceLoss(softmax=True, to_onehot_y=True)))])
    elif loss == "ce":
        add(None, lambda m: [Peer(
            "F.cross_entropy", "torch", "CrossEntropy", {},
            lambda x, t: F.cross_entropy(x, t["labels"]))])
    elif loss == "dice_ce":
        add("monai.losses", lambda m: [Peer(
            "MONAI DiceCELoss", "monai", "Dice+CrossEntropy", {},
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.DiceCELoss(softmax=True, to_onehot_y=True)))])
        add(None, lambda m: [Peer(
            "nnU-Net-style soft Dice + F.cross_entropy", "own", "Dice+CrossEntropy",
            {"include_background": False},
            lambda x, t: nnunet_style_soft_dice(x, t["labels_n1"]) + F.cross_entropy(
                x, t["labels"]), offset=-1.0, note="returns -dice + ce (culoss: 1 - dice + ce)")])
    elif loss == "bce":
        add(None, lambda m: [Peer(
            "F.binary_cross_entropy_with_logits", "torch", "BCE", {},
            lambda x, t: F.binary_cross_entropy_with_logits(x, t["dense"]), target="dense")])
    elif loss == "focal":
        add("torchvision.ops", lambda m: [Peer(
            "torchvision sigmoid_focal_loss", "torchvision", "Focal", {},
            lambda x, t: m.sigmoid_focal_loss(x, t["dense"], alpha=0.25, gamma=2.0,
                                              reduction="mean"), target="dense")])
        add("kornia.losses", lambda m: [Peer(
            "kornia binary_focal_loss_with_logits", "kornia", "Focal", {},
            lambda x, t: m.binary_focal_loss_with_logits(x, t["dense"], alpha=0.25, gamma=2.0,
                                                         reduction="mean"), target="dense")])
        add("monai.losses", lambda m: [Peer(
            "MONAI FocalLoss", "monai", "Focal", {},
            (lambda f: lambda x, t: f(x, t["dense"]))(m.FocalLoss(alpha=0.25, gamma=2.0)),
            target="dense")])
    elif loss == "focal_softmax":
        # multi-class focal loss, −(1 − p_t)^γ log p_t averaged over the pixels, γ = 2
        sm = {"activation": "softmax", "gamma": 2.0}
        add(None, lambda m: [Peer(
            "softmax focal from its formula", "own", "Focal", sm,
            lambda x, t: softmax_focal(x, t["labels"], 2.0))])
        add("monai.losses", lambda m: [Peer(
            "MONAI FocalLoss(use_softmax=True)", "monai", "Focal", sm,
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)),
            scale=1.0 / shape[1], note="mean over the classes too: culoss / C")])
    elif loss == "lovasz_softmax":
        add("segmentation_models_pytorch.losses", lambda m: [Peer(
            "smp LovaszLoss", "smp", "LovaszSoftmax", {},
            (lambda f: lambda x, t: f(x, t["labels"]))(m.LovaszLoss("multiclass")),
            note="float32 only")])
        add(None, lambda m: [Peer(
            "reference Lovász-Softmax (Berman et al.)", "own", "LovaszSoftmax", {},
            lambda x, t: reference_lovasz_softmax(x, t["labels"]))])
        add("kornia.losses", lambda m: [Peer(
            "kornia lovasz_softmax_loss", "kornia", "LovaszSoftmax",
            {"per_image": True, "classes": "all"},
            lambda x, t: m.lovasz_softmax_loss(x, t["labels"]), only2d=True)])
    elif loss == "topk_ce":
        add(None, lambda m: [Peer(
            "nnU-Net-style TopK CE (k=25)", "own", "TopKCrossEntropy", {"top_fraction": 0.25},
            lambda x, t: nnunet_style_topk_ce(x, t["labels"]))])
    elif loss == "lovasz_hinge":
        add("segmentation_models_pytorch.losses", lambda m: [Peer(
            "smp LovaszLoss binary", "smp", "LovaszHinge", {},
            (lambda f: lambda x, t: f(x, t["dense"]))(m.LovaszLoss("binary")),
            target="dense", need_c1=True)])
        add(None, lambda m: [Peer(
            "reference Lovász hinge (Berman et al.)", "own", "LovaszHinge", {},
            lambda x, t: reference_lovasz_hinge(x, t["dense"]), target="dense")])
        add("kornia.losses", lambda m: [Peer(
            "kornia lovasz_hinge_loss", "kornia", "LovaszHinge", {"per_image": True},
            lambda x, t: m.lovasz_hinge_loss(x, t["labels_bin"]), target="dense",
            only2d=True, need_c1=True)])
    elif loss == "mcc":
        # smp's MCCLoss takes probabilities and pools the batch and every channel: the sigmoid
        # is part of its step (culoss fuses it).
        add("segmentation_models_pytorch.losses", lambda m: [Peer(
            "smp MCCLoss", "smp", "MCC",
            {"activation": "sigmoid", "batch": True, "average": "micro"},
            (lambda f: lambda x, t: f(torch.sigmoid(x), t["dense"]))(m.MCCLoss()),
            target="dense")])
    elif loss == "hausdorff_dt":
        add("monai.losses", lambda m: [Peer(
            "MONAI HausdorffDTLoss", "monai", "HausdorffDT", {},
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.HausdorffDTLoss(softmax=True, to_onehot_y=True, include_background=True)),
            note="distance maps by scipy.ndimage on the CPU; float32 maps")])
    elif loss == "cldice":
        add("monai.losses", lambda m: [Peer(
            "MONAI SoftclDiceLoss", "monai", "ClDice", {"average": "micro"},
            (lambda f: lambda x, t: f(x, t["labels_n1"]))(
                m.SoftclDiceLoss(softmax=True, to_onehot_y=True, smooth=1e-12)),
            note="smooth=1e-12 (MONAI's 1e-4 in the harmonic mean is culoss's 0)")])
    return out


# ------------------------------------------------------------------------------ data

def make_data(loss, shape, dtype, device, seed):
    """Logits of a mostly-right model plus noise (never zeros), class labels, 0/1 masks."""
    import torch
    g = torch.Generator(device="cpu").manual_seed(seed)
    N, C = shape[0], shape[1]
    x = torch.randn(shape, generator=g) * 1.5
    labels = torch.randint(0, C, (N,) + tuple(shape[2:]), generator=g)
    if loss in SOFTMAX_LOSSES:
        x.scatter_add_(1, labels[:, None], torch.full((N, 1) + tuple(shape[2:]), 2.0))
        dense = None
    else:
        dense = (torch.rand(shape, generator=g) < 0.3).float()
        x += (2 * dense - 1) * 1.0
    t = {"labels": labels.to(device), "labels_n1": labels[:, None].to(device)}
    if dense is not None:
        t["dense"] = dense.to(device)
        t["labels_bin"] = dense[:, 0].long().to(device)
    return x.to(device=device, dtype=dtype), t, x.double(), labels, dense


# ------------------------------------------------------------------------------ timing

class Timer:
    def __init__(self, device, flush):
        import torch
        self.torch, self.cuda = torch, device.startswith("cuda")
        self.flush_buf = None
        if self.cuda and flush:
            self.flush_buf = torch.empty(64 << 20, dtype=torch.uint8, device=device)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def run(self, step, repeat):
        """Median ms of step() over repeat calls, and all the times."""
        torch = self.torch
        times = []
        for _ in range(repeat):
            if self.cuda:
                if self.flush_buf is not None:
                    self.flush_buf.zero_()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                step()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                step()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), times

    def peak_extra(self, step):
        """Peak bytes allocated by one step beyond what was allocated before it (CUDA)."""
        if not self.cuda:
            return None
        torch = self.torch
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base


def fwd_bwd_step(fn, x, t):
    def step():
        x.grad = None
        fn(x, t).backward()
    return step


def rel_errors(v, g, ref_v, ref_g, scale, offset):
    """(value error, gradient error) of a peer's (v, g) = scale*culoss + offset vs float64."""
    import torch
    v = (float(v.detach()) - offset) / scale
    g = g.detach().double().cpu() / scale
    ref_g = torch.as_tensor(ref_g).double().cpu()
    verr = abs(v - ref_v) / max(abs(ref_v), 1e-30)
    if not torch.isfinite(g).all() or not math.isfinite(v):
        return float("nan"), float("nan")
    gerr = float((g - ref_g).abs().max() / max(float(ref_g.abs().max()), 1e-30))
    return verr, gerr


# ------------------------------------------------------------------------------ main loop

def parse_shape(s):
    return tuple(int(v) for v in s.lower().split("x"))


def shape_str(shape):
    return "x".join(str(s) for s in shape)


def versions(args):
    import torch
    v = {"python": platform.python_version(), "torch": torch.__version__,
         "torch_cuda": torch.version.cuda}
    culoss = import_culoss()
    v["culoss"] = getattr(culoss, "__version__", "?")
    try:
        v["libculoss"] = "%s (%s)" % (culoss.library_version(), culoss.library_path())
    except Exception as exc:  # noqa: BLE001
        v["libculoss"] = "not loaded: %s" % exc
    for name, mod in [("monai", "monai"), ("segmentation_models_pytorch",
                                             "segmentation_models_pytorch"),
                      ("kornia", "kornia"), ("torchvision", "torchvision"),
                      ("matplotlib", "matplotlib"), ("triton", "triton")]:
        m = lazy(mod) if mod != "matplotlib" and mod != "triton" else _quiet_import(mod)
        v[name] = getattr(m, "__version__", "?") if m is not None else "not installed"
    return v


def _quiet_import(name):
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001
        return None


def device_name(device):
    import torch
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(torch.device(device))
        return "%s (sm_%d%d, %d SMs, %.0f GiB)" % (p.name, p.major, p.minor,
                                                   p.multi_processor_count,
                                                   p.total_memory / 2**30)
    return "CPU: %s, %d threads" % (platform.processor() or platform.machine(),
                                    torch.get_num_threads())


class Bench:
    def __init__(self, args):
        import torch
        self.args, self.torch = args, torch
        self.culoss = import_culoss()
        self.timer = Timer(args.device, args.flush)
        self.rows = []
        self.culoss_ms = {}
        self.meta = None
        self.t0 = time.monotonic()
        self.dtype = getattr(torch, args.dtype)

    def over_budget(self):
        return self.args.time_budget and time.monotonic() - self.t0 > self.args.time_budget

    def row(self, **kw):
        self.rows.append(kw)
        if self.meta is not None:  # after every row: a killed run keeps what it measured
            write_outputs(self.args.out, self.meta, self.rows, False)
        r = kw
        print("  %-44s %-12s %9s ms  x%-7s  mem %8s MiB  err %s/%s  %s" % (
            r["impl"][:44], r["mode"], _f(r.get("ms"), "%.3f"), _f(r.get("speedup"), "%.2f"),
            _f(r.get("peak_mib"), "%.1f"), _f(r.get("value_err"), "%.1e"),
            _f(r.get("grad_err"), "%.1e"), r.get("note", "")), flush=True)

    def make_loss(self, kind, kw):
        """The culoss loss of a config: a kind, or "A+B" (a culoss.Sum of weight 1 each, the
        keywords going to A; check_targets to every term)."""
        names = kind.split("+")
        first = getattr(self.culoss, names[0])(**kw)
        if len(names) == 1:
            return first
        extra = {"check_targets": kw["check_targets"]} if "check_targets" in kw else {}
        return sum([getattr(self.culoss, n)(**extra) for n in names[1:]], first)

    def culoss_fn(self, kind, kw, target_key):
        """culoss's PyTorch module (one fused call: value and gradient), no target check."""
        mod = self.culoss.torch.LossModule(self.make_loss(kind, dict(kw, check_targets=False)))
        return lambda x, t: mod(x, t[target_key])

    def reference(self, kind, kw, x64, t):
        """culoss float64 (value, grad) on the CPU, or on the device for big problems."""
        torch = self.torch
        loss = self.make_loss(kind, kw)
        on_cpu = x64.numel() <= self.args.ref_cpu_max or not self.args.device.startswith("cuda")
        dev = "cpu" if on_cpu else self.args.device
        xin = x64 if on_cpu else x64.to(dev)
        tin = t.to(dev) if on_cpu else t.to(dev)
        if on_cpu:
            v, g = loss(xin.numpy(), tin.numpy())
            return float(v), torch.from_numpy(g)
        v, g = loss(xin, tin)
        return float(v), g.cpu()

    def run_case(self, loss, shape, phase):
        """phase "eager": culoss and the competitors in eager mode; "compile": the
        competitors under torch.compile (after every eager row, so that a time budget cuts
        the slow compilations first)."""
        args, torch = self.args, self.torch
        print("== %s %s %s [%s]" % (loss, shape_str(shape), args.dtype, phase), flush=True)
        base = dict(loss=loss, shape=shape_str(shape), dtype=args.dtype)
        if loss in SOFTMAX_LOSSES and shape[1] < 2:
            print("  (skipped: softmax loss needs C >= 2)")
            return
        if loss == "lovasz_hinge" and shape[1] != 1 and args.hinge_c1_only:
            print("  (skipped: Lovász hinge benchmarked at C = 1)")
            return
        peers = peers_for(loss, shape)
        if phase == "compile" and not peers:
            return
        x, t, x64, labels, dense = make_data(loss, shape, self.dtype, args.device, args.seed)
        x.requires_grad_(True)
        ref_target = labels if loss in SOFTMAX_LOSSES else dense
        tkey = "labels" if loss in SOFTMAX_LOSSES else "dense"
        configs = {}
        for p in peers:
            configs.setdefault(p.config(), (p.kind, p.kw))
        if not configs:  # no competitor installed: still time culoss's default
            kind = {"dice": "Dice", "tversky": "Tversky", "gdice": "GeneralizedDice",
                    "ce": "CrossEntropy", "dice_ce": "Dice+CrossEntropy", "bce": "BCE",
                    "focal": "Focal", "focal_softmax": "Focal",
                    "lovasz_softmax": "LovaszSoftmax", "lovasz_hinge": "LovaszHinge",
                    "mcc": "MCC", "topk_ce": "TopKCrossEntropy", "hausdorff_dt": "HausdorffDT",
                    "cldice": "ClDice"}[loss]
            configs[config_key(kind, {})] = (kind, {})
        culoss_ms = self.culoss_ms.setdefault((loss, shape), {})
        refs = {}
        for key, (kind, kw) in configs.items():
            if self.over_budget():
                if phase == "eager":
                    self.row(**base, impl="culoss " + key, mode="culoss",
                             note="skipped: time budget")
                continue
            ref_note = ""
            try:
                t_ref = time.monotonic()
                refs[key] = self.reference(kind, kw, x64, ref_target)
                ref_note = "ref %.1fs" % (time.monotonic() - t_ref)
            except Exception as exc:  # noqa: BLE001
                refs[key] = None
                ref_note = "reference failed: %s" % str(exc)[:100]
            if phase == "eager":
                self.measure(base, "culoss " + key, "culoss", self.culoss_fn(kind, kw, tkey), x,
                             t, refs.get(key), 1.0, 0.0, culoss_ms, key, note=ref_note)
        for p in peers:
            mode = phase
            if p.only2d and len(shape) != 4:
                if phase == "eager":
                    self.row(**base, impl=p.name, mode=mode, config=p.config(),
                             note="skipped: 2-D (N, C, H, W) only")
                continue
            if p.need_c1 and shape[1] != 1:
                if phase == "eager":
                    self.row(**base, impl=p.name, mode=mode, config=p.config(),
                             note="skipped: one channel only (C = 1)")
                continue
            if self.over_budget():
                self.row(**base, impl=p.name, mode=mode, config=p.config(),
                         note="skipped: time budget")
                continue
            fn = p.fn
            if mode == "compile":
                torch._dynamo.reset()
                fn = torch.compile(p.fn, dynamic=False)
            self.measure(base, p.name, mode, fn, x, t, refs.get(p.config()), p.scale,
                         p.offset, culoss_ms, p.config(), note=p.note)
        del x, t
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def measure(self, base, impl, mode, fn, x, t, ref, scale, offset, culoss_ms, key, note=""):
        args = self.args
        row = dict(base, impl=impl, mode=mode, config=key, note=note)
        step = fwd_bwd_step(fn, x, t)
        try:
            t_first = time.monotonic()
            step()  # first call: compilation for torch.compile, module load otherwise
            self.timer.sync()
            first_s = time.monotonic() - t_first
            if mode == "compile":
                row["compile_s"] = round(first_s, 2)
                row["note"] = (note + "; " if note else "") + "compile %.1fs" % first_s
            # error on the first result (fresh data, no state carried between calls)
            value = fn(x, t)
            x.grad = None
            value.backward()
            if ref is not None:
                row["value_err"], row["grad_err"] = rel_errors(value, x.grad, ref[0], ref[1],
                                                               scale, offset)
            del value
            for _ in range(args.warmup):
                step()
            row["peak_mib"] = (lambda b: None if b is None else b / 2**20)(
                self.timer.peak_extra(step))
            row["ms"], row["times_ms"] = self.timer.run(step, args.repeat)
        except Exception as exc:  # noqa: BLE001 - a failing competitor is a row, not a crash
            msg = str(exc).strip().splitlines()
            row["note"] = ((note + "; ") if note else "") + "FAILED: %s: %s" % (
                type(exc).__name__, (msg[0] if msg else "")[:160])
            if args.verbose:
                traceback.print_exc()
        finally:
            x.grad = None
        if mode == "culoss" and row.get("ms") is not None:
            culoss_ms[key] = row["ms"]
            row["speedup"] = 1.0
        elif row.get("ms") is not None and culoss_ms.get(key):
            row["speedup"] = row["ms"] / culoss_ms[key]
        err = max(row.get("value_err") or 0.0, row.get("grad_err") or 0.0)
        if mode != "culoss" and ref is not None and "value_err" in row and not err < 1e-2:
            row["note"] += "; error > 1e-2: definitions differ?"
        self.row(**row)


def _f(v, fmt):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return fmt % v


# ------------------------------------------------------------------------------ output

def write_outputs(out, meta, rows, with_chart=True):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = ["# culoss vs PyTorch losses: forward + backward", "",
             "| | |", "|---|---|"]
    for k in ["device", "date", "command", "dtype", "repeat", "timing", "memory", "error"]:
        lines.append("| %s | %s |" % (k, str(meta[k]).replace("|", "\\|")))
    lines.append("| versions | %s |" % ", ".join("%s %s" % kv for kv in meta["versions"].items()))
    lines += ["", "`speed-up` = competitor time / culoss time for the same definition (culoss "
              "keywords in `config`); `err` = value / gradient relative error against culoss "
              "float64 (see the script's docstring).", ""]
    lines.append("| # | loss | shape | implementation | mode | config | median ms | speed-up | "
                 "peak extra MiB | err value | err grad | note |")
    lines.append("|---:|---|---|---|---|---|---:|---:|---:|---:|---:|---|")
    for number, r in enumerate(rows, 1):
        lines.append("| %d | %s | %s | %s | %s | `%s` | %s | %s | %s | %s | %s | %s |" % (
            number, r["loss"], r["shape"], r["impl"].split(" ", 1)[0] if r["mode"] == "culoss"
            else r["impl"], r["mode"], r.get("config", ""), _f(r.get("ms"), "%.3f"),
            _f(r.get("speedup"), "%.2f×"), _f(r.get("peak_mib"), "%.1f"),
            _f(r.get("value_err"), "%.1e"), _f(r.get("grad_err"), "%.1e"),
            r.get("note", "").replace("|", "\\|")))
    if meta["notes"]:
        lines += ["", "Notes:", ""] + ["- " + n for n in meta["notes"]]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return chart(out, meta, rows) if with_chart else None


def chart_without_matplotlib(out, rows):
    """The same bars drawn by png_chart (standard library only), labelled by results.md's #."""
    sys.path.insert(0, HERE)
    import png_chart
    bars = [(n, r["ms"], r["mode"]) for n, r in enumerate(rows, 1) if r.get("ms")]
    if not bars:
        return "chart skipped: nothing timed"
    png_chart.bar_chart(bars, os.path.join(out, "chart.png"))
    return ("chart.png written without matplotlib: bars are labelled with the # of the table "
            "above (log scale of the median ms; green culoss, purple eager, orange torch.compile)")


def chart(out, meta, rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001
        return chart_without_matplotlib(out, rows)
    timed = [r for r in rows if r.get("ms")]
    if not timed:
        return "chart skipped: nothing timed"
    shapes = list(dict.fromkeys(r["shape"] for r in timed))
    heights = [sum(1 for r in timed if r["shape"] == s) for s in shapes]
    fig, axes = plt.subplots(len(shapes), 1, figsize=(10, 1.5 + 0.22 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    colors = {"culoss": "#1b7837", "eager": "#762a83", "compile": "#e08214"}
    for ax, s in zip(axes[:, 0], shapes):
        rs = [r for r in timed if r["shape"] == s]
        names = ["%s: %s%s" % (r["loss"], r["impl"][:48],
                               " [compile]" if r["mode"] == "compile" else "") for r in rs]
        ax.barh(range(len(rs)), [r["ms"] for r in rs],
                color=[colors.get(r["mode"], "grey") for r in rs])
        ax.set_yticks(range(len(rs)))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title("%s, %s" % (s, meta["dtype"]), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("median forward + backward, ms (log); green culoss, purple eager, "
                           "orange torch.compile")
    fig.suptitle("%s — %s" % (meta["device"], meta["date"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "chart.png"), dpi=110)
    plt.close(fig)
    return "chart.png written"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated NxCxD1x...; default %s (GPU), %s (--quick)"
                    % (GPU_SHAPES, QUICK_SHAPES))
    ap.add_argument("--losses", default=",".join(ALL_LOSSES),
                    help="comma-separated subset of " + ",".join(ALL_LOSSES))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--repeat", type=int, default=None, help="timed calls (default 20; quick 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls (default 3; quick 1)")
    ap.add_argument("--compile", dest="compile", action="store_true", default=None,
                    help="also time torch.compile of each competitor (default on CUDA)")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--compile-shapes", default=None,
                    help="shapes for the torch.compile rows (default: the first of --shapes; "
                    "each compilation takes seconds to a minute)")
    ap.add_argument("--no-flush", dest="flush", action="store_false", default=True,
                    help="do not evict L2 (64 MiB write) before each CUDA iteration")
    ap.add_argument("--hinge-all-c", dest="hinge_c1_only", action="store_false", default=True,
                    help="also run lovasz_hinge at shapes with C > 1")
    ap.add_argument("--ref-cpu-max", type=int, default=1 << 25,
                    help="above this many elements the float64 reference runs on the device")
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="seconds; once spent, the remaining rows are skipped (0: none)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--quick", action="store_true", help="tiny shapes, few repeats, no compile")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/"
                    "<device>-<date>)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    import torch
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda, but torch.cuda.is_available() is False")
    if args.shapes is None:
        args.shapes = QUICK_SHAPES if (args.quick or args.device == "cpu") else GPU_SHAPES
    if args.repeat is None:
        args.repeat = 3 if args.quick else 20
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.compile is None:
        args.compile = args.device.startswith("cuda") and not args.quick
    shapes = [parse_shape(s) for s in args.shapes.split(",") if s]
    losses = [s for s in args.losses.split(",") if s]
    bad = [s for s in losses if s not in ALL_LOSSES]
    if bad:
        ap.error("unknown loss(es) %s; choose from %s" % (bad, ALL_LOSSES))
    now = datetime.datetime.now(datetime.timezone.utc)
    if args.out is None:
        args.out = os.path.join(REPO, "benchmarks", "results", "%s-%s" % (
            args.device.split(":")[0], now.strftime("%Y%m%d-%H%M")))

    bench = Bench(args)
    meta = {"device": device_name(args.device), "date": now.strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "dtype": args.dtype, "repeat": "%d timed after %d warm-up (median)"
            % (args.repeat, args.warmup),
            "timing": ("CUDA events, 64 MiB L2 flush before each call" if args.flush else
                       "CUDA events, no L2 flush") if args.device.startswith("cuda")
            else "time.perf_counter (CPU)",
            "memory": "torch.cuda.max_memory_allocated - memory_allocated before the call"
            if args.device.startswith("cuda") else "n/a on the CPU",
            "error": "vs culoss float64 (CPU up to %d elements, else on the device)"
            % args.ref_cpu_max,
            "versions": versions(args), "notes": NOTES, "compile": args.compile}
    bench.meta = meta
    print("culoss vs torch on %s, %s; %s" % (meta["device"], meta["date"], meta["versions"]),
          flush=True)
    for shape in shapes:
        for loss in losses:
            bench.run_case(loss, shape, "eager")
            write_outputs(args.out, meta, bench.rows, False)  # partial results survive a kill
    if args.compile:
        cshapes = shapes[:1] if args.compile_shapes is None else [
            parse_shape(s) for s in args.compile_shapes.split(",") if s]
        for shape in cshapes:
            for loss in losses:
                bench.run_case(loss, shape, "compile")
                write_outputs(args.out, meta, bench.rows, False)
    if bench.over_budget():
        NOTES.append("time budget of %.0f s spent: later rows skipped" % args.time_budget)
    stale = os.path.join(args.out, "chart.png")
    if os.path.exists(stale):
        os.remove(stale)  # never leave an earlier run's chart beside these results
    msg = write_outputs(args.out, meta, bench.rows)
    if msg != "chart.png written":
        NOTES.append(msg)
        write_outputs(args.out, meta, bench.rows, False)
    failed = [r for r in bench.rows if "FAILED" in r.get("note", "")]
    print("bench_vs_torch: %d rows (%d timed, %d failed) in %.0f s -> %s (%s)" % (
        len(bench.rows), sum(1 for r in bench.rows if r.get("ms")), len(failed),
        time.monotonic() - bench.t0, args.out, msg))
    culoss_failed = [r for r in failed if r["mode"] == "culoss"]
    return 1 if culoss_failed else 0


if __name__ == "__main__":
    sys.exit(main())
