#!/usr/bin/env python3
"""A JAX training loop with a culoss loss (``culoss.jax``), on the CPU or, with a CUDA build of
culoss and a CUDA jaxlib, on a GPU.

A two-layer convolutional network learns to segment synthetic images (a bright square and a
dark disk on a noisy background; classes background, square, disk) with plain SGD and momentum.
The loss is ``culoss.jax.function`` of a fused sum, Dice without the background plus
cross-entropy: inside the jitted step the forward is one XLA custom call that returns the value
and keeps the gradient, and ``jax.value_and_grad`` carries that gradient into the network.

    pip install ./bindings/python          # with jax installed, so that culoss.jax is built
    python examples/jax_train.py
    python examples/jax_train.py --steps 600 --width 16 --lr 0.5

Before training it checks culoss's cross-entropy (value and gradient) against the same loss
written in jax.numpy.
"""

import argparse
import sys
import time

import numpy as np

try:
    import jax
    import jax.numpy as jnp

    import culoss
    import culoss.jax
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit("jax_train.py needs JAX (pip install jax) and culoss installed after it, so that "
             "its XLA FFI handler is built (pip install ./bindings/python): %s" % e)

CLASSES = ("background", "square", "disk")
BRIGHTNESS = np.array([0.0, 1.0, -1.0], dtype=np.float32)


# --name: (type, default, help)
OPTIONS = {
    "steps": (int, 300, "SGD steps"),
    "batch": (int, 8, "images per step"),
    "size": (int, 32, "image side in pixels"),
    "width": (int, 8, "channels of the hidden layer"),
    "lr": (float, 0.2, "learning rate"),
    "momentum": (float, 0.9, "SGD momentum"),
    "noise": (float, 0.6, "standard deviation of the pixel noise"),
    "log": (int, 20, "print the loss every LOG steps"),
    "seed": (int, 0, "seed of the data and the initial weights"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a two-layer CNN in JAX with a culoss loss.")
    for name, (kind, default, text) in OPTIONS.items():
        p.add_argument("--" + name, type=kind, default=default, help="%s [%s]" % (text, default))
    a = p.parse_args(argv)
    for name in ("steps", "batch", "width", "log"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name)
    if a.size < 8:
        p.error("--size must be at least 8")
    return a


def synthetic_batch(rng, count, size, noise):
    """Images (count, 1, size, size) float32 and labels (count, size, size) int32."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    labels = np.zeros((count, size, size), dtype=np.int32)
    for lab in labels:
        half = rng.uniform(0.12, 0.22) * size
        cy, cx = rng.uniform(half, size - half, size=2)
        lab[(np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)] = 1
        r = rng.uniform(0.10, 0.18) * size
        cy, cx = rng.uniform(r, size - r, size=2)
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2  # drawn over the square
    images = BRIGHTNESS[labels][:, None] + rng.normal(0.0, noise, (count, 1, size, size))
    return images.astype(np.float32), labels


def init(key, width, classes=len(CLASSES)):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (width, 1, 3, 3)) * (2.0 / 9) ** 0.5,
            "b1": jnp.zeros(width),
            "w2": jax.random.normal(k2, (classes, width, 3, 3)) * 0.1 / (9 * width) ** 0.5,
            "b2": jnp.zeros(classes)}


def conv(x, w, b):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def net(params, x):
    """Logits (N, classes, H, W)."""
    return conv(jax.nn.relu(conv(x, params["w1"], params["b1"])), params["w2"], params["b2"])


def check():
    """culoss's cross-entropy against the same loss in jax.numpy, value and gradient."""
    x, y = synthetic_batch(np.random.default_rng(123), 2, 8, 1.0)
    logits = jnp.asarray(np.random.default_rng(7).standard_normal((2, 3, 8, 8)), jnp.float32)
    ce = culoss.jax.function(culoss.CrossEntropy())

    def reference(z):
        logp = jax.nn.log_softmax(z, axis=1)
        return -jnp.take_along_axis(logp, jnp.asarray(y)[:, None], axis=1).mean()

    v, g = jax.value_and_grad(ce)(logits, y)
    rv, rg = jax.value_and_grad(reference)(logits)
    dv, dg = abs(float(v - rv)), float(jnp.abs(g - rg).max())
    print("check: culoss CrossEntropy vs jax.numpy: |value diff| %.2e, max |grad diff| %.2e"
          % (dv, dg))
    if dv > 1e-5 or dg > 1e-6:
        sys.exit("check failed: culoss and jax.numpy disagree")


def dice_scores(params, images, labels):
    """Dice of the argmax prediction per class (over the whole set)."""
    pred = np.asarray(jnp.argmax(net(params, jnp.asarray(images)), axis=1))
    out = []
    for k in range(1, len(CLASSES)):
        p, t = pred == k, labels == k
        out.append(2.0 * (p & t).sum() / max(p.sum() + t.sum(), 1))
    return out


def main(argv=None):
    args = parse_args(argv)
    print("culoss %s (library %s), JAX %s on %s" % (
        culoss.__version__, culoss.library_version(), jax.__version__, jax.devices()[0]))
    check()

    # one fused culoss call for both terms (CULOSS_SUM): value and summed gradient at once
    loss_fn = culoss.jax.function(culoss.Dice(include_background=False) + culoss.CrossEntropy())

    @jax.jit
    def train_step(params, velocity, x, y):
        value, grads = jax.value_and_grad(lambda p: loss_fn(net(p, x), y))(params)
        velocity = jax.tree_util.tree_map(lambda v, g: args.momentum * v + g, velocity, grads)
        params = jax.tree_util.tree_map(lambda p, v: p - args.lr * v, params, velocity)
        return params, velocity, value

    rng = np.random.default_rng(args.seed)
    params = init(jax.random.PRNGKey(args.seed), args.width)
    velocity = jax.tree_util.tree_map(jnp.zeros_like, params)
    test_images, test_labels = synthetic_batch(np.random.default_rng(args.seed + 1), 32,
                                               args.size, args.noise)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = synthetic_batch(rng, args.batch, args.size, args.noise)
        params, velocity, value = train_step(params, velocity, x, y)
        if step == 1 or step % args.log == 0 or step == args.steps:
            print("step %4d loss %.4f" % (step, float(value)))
    elapsed = time.perf_counter() - t0
    scores = dice_scores(params, test_images, test_labels)
    print("%d steps in %.1f s; held-out Dice: %s" % (
        args.steps, elapsed, ", ".join("%s %.3f" % kv for kv in zip(CLASSES[1:], scores))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
