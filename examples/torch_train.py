#!/usr/bin/env python3
"""A PyTorch training loop with culoss losses (``culoss.torch``), on the CPU or a CUDA GPU.

The PyTorch counterpart of ``culoss-demo`` (docs/demo.md): a small fully convolutional network
(``torch.nn`` layers, autograd) is trained on a seeded synthetic segmentation set (an ellipse, a
rectangle and a small circle on a noisy textured background) with each loss, from the same
initial weights and with the same batches, and compared on held-out images. Each loss is an
``nn.Module`` whose forward makes one culoss call that returns the value and saves the gradient;
``loss.backward()`` hands that gradient to autograd.

    pip install ./bindings/python          # and PyTorch
    python examples/torch_train.py                        # every loss, CPU
    python examples/torch_train.py --device cuda --losses dice+ce,marginal --steps 1000
    python examples/torch_train.py --help

On a CPU shared with other work, ``--threads 1`` can be much faster than PyTorch's default
(its worker threads wait on each other when the cores are busy).

Before training it checks culoss's cross-entropy (value and autograd gradient) against
``torch.nn.functional.cross_entropy`` on a random batch.
"""

import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("torch_train.py needs PyTorch (pip install torch)")

try:
    import culoss
    import culoss.torch  # noqa: F401  (the nn.Module adapter)
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit("torch_train.py needs the culoss package (pip install ./bindings/python): %s" % e)

CLASSES = ("background", "ellipse", "rectangle", "circle")
CONTRAST = (0.0, 0.9, -0.9, 0.9)  # the ellipse and the circle are equally bright

# key -> (table name, trained on the labels with missing annotations, module factory)
LOSSES = {
    "ce": ("cross-entropy", False, lambda: culoss.torch.CrossEntropyLoss()),
    "dice": ("Dice", False, lambda: culoss.torch.DiceLoss(include_background=False)),
    # A sum of culoss losses is one fused call (CULOSS_SUM): value and summed gradient at once.
    "dice+ce": ("Dice + CE", False, lambda: culoss.torch.LossModule(
        culoss.Dice(include_background=False) + culoss.CrossEntropy())),
    "focal": ("focal", False, lambda: culoss.torch.FocalLoss(activation="softmax", gamma=2.0)),
    "tversky": ("Tversky", False, lambda: culoss.torch.TverskyLoss(
        alpha=0.3, beta=0.7, include_background=False)),
    "lovasz": ("Lovasz-Softmax", False, lambda: culoss.torch.LovaszSoftmaxLoss()),
    "ce-missing": ("cross-entropy", True, lambda: culoss.torch.CrossEntropyLoss()),
    "marginal": ("marginal CE", True, lambda: culoss.torch.MarginalCrossEntropyLoss()),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train a small CNN with culoss losses in PyTorch and compare them.")
    p.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    p.add_argument("--losses", default=",".join(LOSSES),
                   help="comma-separated subset of: %s [all]" % ", ".join(LOSSES))
    p.add_argument("--steps", type=int, default=400, help="training steps per loss [400]")
    p.add_argument("--batch", type=int, default=8, help="images per step [8]")
    p.add_argument("--size", type=int, default=48, help="image side in pixels [48]")
    p.add_argument("--width", type=int, default=8, help="channels of the hidden layers [8]")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate [0.01]")
    p.add_argument("--train", type=int, default=512, help="training images [512]")
    p.add_argument("--test", type=int, default=64, help="held-out images [64]")
    p.add_argument("--missing", type=float, default=0.5,
                   help="fraction of training images whose annotation of --missing-class is "
                        "missing, for ce-missing and marginal [0.5]")
    p.add_argument("--missing-class", default="rectangle", choices=CLASSES[1:],
                   help="the class left out [rectangle]")
    p.add_argument("--seed", type=int, default=1, help="seed [1]")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (torch.set_num_threads) [PyTorch's default]")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model and the loss (culoss is one opaque op)")
    a = p.parse_args(argv)
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be at least 1")
    for name in ("steps", "batch", "width", "train", "test"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name)
    if not 16 <= a.size <= 512:
        p.error("--size must be from 16 to 512")
    if not (a.lr > 0 and math.isfinite(a.lr)):
        p.error("--lr must be a positive number")
    if not 0.0 <= a.missing <= 1.0:
        p.error("--missing must be in [0, 1]")
    if a.batch > a.train:
        p.error("--batch is larger than --train")
    a.losses = [k.strip() for k in a.losses.split(",") if k.strip()]
    unknown = [k for k in a.losses if k not in LOSSES]
    if unknown or not a.losses:
        p.error("--losses: unknown loss %s (known: %s)" % (", ".join(unknown) or "''",
                                                            ", ".join(LOSSES)))
    if a.device not in ("cpu", "cuda") and not a.device.startswith("cuda:"):
        p.error("--device must be cpu or cuda")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device %s: PyTorch sees no CUDA device" % a.device)
    return a


# --------------------------------------------------------------------------------------------
# Data: one ellipse, one rectangle and one small circle per image, at random places.

def make_dataset(count, size, seed):
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    S = float(size)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5,
                            torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    images = torch.empty(count, 1, size, size)
    labels = torch.zeros(count, size, size, dtype=torch.int64)
    for n in range(count):
        ea, eb, eang = S * (0.14 + 0.10 * u(1)), S * (0.08 + 0.05 * u(1)), math.pi * u(1)
        rw, rh = S * (0.07 + 0.08 * u(1)), S * (0.07 + 0.08 * u(1))
        cr = S * (0.035 + 0.03 * u(1))
        radii = [float(ea), float(torch.hypot(rw, rh)), float(cr)]
        for _ in range(200):  # apart from each other when a few tries allow it
            centres = [(r + 1 + (S - 2 * r - 2) * float(u(1)), r + 1 + (S - 2 * r - 2) * float(u(1)))
                       for r in radii]
            if all(math.dist(centres[i], centres[j]) >= radii[i] + radii[j] + 2
                   for i in range(3) for j in range(i + 1, 3)):
                break
        (ey, ex), (ry, rx), (cy, cx) = centres
        c, s = torch.cos(eang), torch.sin(eang)
        du, dv = (xx - ex) * c + (yy - ey) * s, -(xx - ex) * s + (yy - ey) * c
        lab = torch.zeros(size, size, dtype=torch.int64)
        lab[(du / ea) ** 2 + (dv / eb) ** 2 <= 1] = 1
        lab[((xx - rx).abs() <= rw) & ((yy - ry).abs() <= rh)] = 2
        lab[(xx - cx) ** 2 + (yy - cy) ** 2 <= cr ** 2] = 3
        # background: three gratings, an illumination gradient, noise
        f = (u(3, 2) - 0.5) * 0.9
        ph = 2 * math.pi * u(3)
        tex = sum(torch.sin(f[k, 0] * (yy - 0.5) + f[k, 1] * (xx - 0.5) + ph[k]) for k in range(3))
        gy, gx = (u(1) - 0.5) * 0.6, (u(1) - 0.5) * 0.6
        img = 0.3 / math.sqrt(3) * tex + gy * (2 * (yy - 0.5) / S - 1) + gx * (2 * (xx - 0.5) / S - 1)
        img = img + torch.tensor(CONTRAST, dtype=torch.float64)[lab]
        img = img + 0.45 * torch.randn(size, size, generator=g, dtype=torch.float64)
        images[n, 0] = img.float()
        labels[n] = lab
    return images, labels


def drop_annotations(labels, fraction, cls, seed):
    """The labels with class `cls` turned into background in round(fraction * N) images."""
    g = torch.Generator().manual_seed(seed)
    out = labels.clone()
    chosen = torch.randperm(len(labels), generator=g)[: round(fraction * len(labels))]
    sub = out[chosen]
    sub[sub == cls] = 0
    out[chosen] = sub
    return out, len(chosen)


# --------------------------------------------------------------------------------------------
# The network: 3x3 convolutions with dilations 1, 2, 4, 8, 1 and ReLU, then a 1x1 classifier.

class Net(nn.Module):
    def __init__(self, width, classes=len(CLASSES)):
        super().__init__()
        layers, cin = [], 1
        for d in (1, 2, 4, 8, 1):
            layers += [nn.Conv2d(cin, width, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
            cin = width
        head = nn.Conv2d(width, classes, 1)
        nn.init.normal_(head.weight, std=0.1 / math.sqrt(width))  # near-uniform softmax at first
        nn.init.zeros_(head.bias)
        self.body = nn.Sequential(*layers, head)

    def forward(self, x):
        return self.body(x)


def scores(model, images, labels, device, batch=32):
    """Per-class Dice and IoU of the argmax prediction, per image, averaged over images."""
    model.eval()
    dice = torch.zeros(len(CLASSES), dtype=torch.float64)
    iou = torch.zeros(len(CLASSES), dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(images), batch):
            pred = model(images[i:i + batch].to(device)).argmax(1).cpu()
            lab = labels[i:i + batch]
            for k in range(len(CLASSES)):
                p, t = pred == k, lab == k
                tp = (p & t).sum((1, 2)).double()
                ps, ts = p.sum((1, 2)).double(), t.sum((1, 2)).double()
                one = torch.ones_like(tp)  # an empty prediction of an absent class scores 1
                dice[k] += torch.where(ps + ts > 0, 2 * tp / (ps + ts).clamp(min=1), one).sum()
                iou[k] += torch.where(ps + ts - tp > 0, tp / (ps + ts - tp).clamp(min=1), one).sum()
    model.train()
    return dice / len(images), iou / len(images)


def sanity_check(device):
    """culoss's cross-entropy against torch.nn.functional.cross_entropy, value and gradient."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g).to(device).requires_grad_()
    y = torch.randint(0, 4, (2, 8, 8), generator=g).to(device)
    mine = culoss.torch.CrossEntropyLoss()(x, y)
    (gm,) = torch.autograd.grad(mine, x)
    ref = F.cross_entropy(x, y)
    (gr,) = torch.autograd.grad(ref, x)
    dv, dg = abs(mine.item() - ref.item()), (gm - gr).abs().max().item()
    print("check: culoss CrossEntropyLoss vs torch.nn.functional.cross_entropy on %s: "
          "|value diff| %.2e, max |grad diff| %.2e" % (device, dv, dg))
    if dv > 1e-5 or dg > 1e-6:
        sys.exit("check failed: culoss and PyTorch disagree")


def train(args, key, images, labels, test_images, test_labels, device):
    name, _, factory = LOSSES[key]
    torch.manual_seed(args.seed)  # the same initial weights for every loss
    model = Net(args.width).to(device)
    criterion = factory()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    if args.compile:  # culoss's call is one custom op: torch.compile keeps it whole
        net, loss_fn = torch.compile(model), torch.compile(criterion)
    else:
        net, loss_fn = model, criterion
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(args.seed + 1)  # the same batches for every loss
    losses, loss_s, step_s = [], 0.0, 0.0
    for step in range(args.steps):
        t0 = time.perf_counter()
        idx = torch.randint(0, len(images), (args.batch,), generator=g)
        x, y = images[idx].to(device), labels[idx].to(device)
        out = net(x)
        sync()
        t1 = time.perf_counter()
        loss = loss_fn(out, y)  # one culoss call: the value, and the gradient saved
        sync()
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step > 0 or args.steps == 1:  # the first step warms up (and compiles)
            loss_s += t2 - t1
            step_s += time.perf_counter() - t0
    timed = max(1, args.steps - 1)
    dice, iou = scores(model, test_images, test_labels, device)
    tail = max(1, args.steps // 10)
    return name, dice, iou, sum(losses[-tail:]) / tail, 1e3 * loss_s / timed, 1e3 * step_s / timed


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print("culoss %s (library %s) with PyTorch %s on %s" % (
        culoss.__version__, culoss.library_version(), torch.__version__, device))
    sanity_check(device)
    t0 = time.perf_counter()
    images, labels = make_dataset(args.train, args.size, args.seed)
    test_images, test_labels = make_dataset(args.test, args.size, args.seed + 1000003)
    cls = CLASSES.index(args.missing_class)
    missing_labels, dropped = drop_annotations(labels, args.missing, cls, args.seed + 7)
    print("data: %d training and %d held-out %dx%d images (made in %.1f s); the %s unlabelled "
          "in %d training images for ce-missing and marginal" % (
              args.train, args.test, args.size, args.size, time.perf_counter() - t0,
              args.missing_class, dropped))
    rows = []
    for key in args.losses:
        missing = LOSSES[key][1]
        t0 = time.perf_counter()
        row = train(args, key, images, missing_labels if missing else labels, test_images,
                    test_labels, device)
        rows.append((("%.0f%% miss." % (100 * args.missing)) if missing else "complete",) + row)
        print("  trained %-15s %-10s in %5.1f s: held-out mean Dice %.3f" % (
            row[0], rows[-1][0], time.perf_counter() - t0, row[1][1:].mean().item()))
    print("\nheld-out results (%d images; Dice and IoU of the argmax prediction per image, "
          "averaged):\n" % args.test)
    print("%-10s %-15s |%s|%s| %8s | %s" % ("", "", "Dice".center(32), "IoU".center(32),
                                           "final", "ms per step"))
    print("%-10s %-15s | %7s %7s %7s %6s | %7s %7s %7s %6s | %8s | %7s %7s" % (
        "labels", "loss", "ellipse", "rect.", "circle", "mean", "ellipse", "rect.", "circle",
        "mean", "loss", "loss", "step"))
    print("-" * 120)
    for labels_name, name, dice, iou, final, loss_ms, step_ms in rows:
        print("%-10s %-15s | %7.3f %7.3f %7.3f %6.3f | %7.3f %7.3f %7.3f %6.3f | %8.4f | %7.2f %7.1f"
              % (labels_name, name, dice[1], dice[2], dice[3], dice[1:].mean(), iou[1], iou[2],
                 iou[3], iou[1:].mean(), final, loss_ms, step_ms))
    print("\n'loss': the criterion's forward (one culoss call: value and gradient); 'step': "
          "forward, loss,\nbackward and Adam; means over the steps after the first.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
