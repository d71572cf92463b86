#!/usr/bin/env python3
"""Where the time of a small CPU call goes, outside the loss passes themselves.

A forward + backward of a 0.5 ms loss through ``culoss.torch`` is the library's passes plus
fixed costs around them. This script measures those costs, each as a median:

1. Python: a call on a tiny tensor (1x4x1x1) through ``culoss.CrossEntropy``, and the same C call
   through ctypes on tensors borrowed once (the library's own fixed cost).
2. Threads: the C call on 8x4x128x128 logits back to back, after 1 ms idle (its threads asleep),
   and after 1 ms idle with ``culoss.set_num_threads`` called 40 us before it (which wakes them);
   and what ``culoss.set_num_threads`` itself costs the calling thread, with the pool's threads
   awake and asleep.
3. PyTorch's autograd engine: the ``backward()`` of a trivial custom ``autograd.Function`` (its
   forward saves a gradient, its backward returns it), alone and when its forward also makes a
   culoss call of that size on unrelated tensors.

    python benchmarks/python/call_overhead.py [--threads N]

Needs PyTorch and the culoss Python package; prints a table. No GPU is used.
"""

import argparse
import statistics
import time


def median_us(fn, repeat=300, warmup=20, idle_s=0.0):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if idle_s:
            until = time.perf_counter() + idle_s
            while time.perf_counter() < until:
                pass
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads of PyTorch and culoss [2]")
    args = ap.parse_args()

    import torch
    import culoss
    from culoss import _dlpack

    torch.set_num_threads(args.threads)
    culoss.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []

    # 1. Python and ctypes
    loss = culoss.CrossEntropy(check_targets=False)
    tiny_x, tiny_t = torch.randn(1, 4, 1, 1), torch.randint(0, 4, (1, 1, 1))
    rows.append(("tiny call through culoss.CrossEntropy (Python + C)",
                 median_us(lambda: loss(tiny_x, tiny_t, None, grad=True), repeat=3000)))

    def bare_call(x, t):
        """The C call alone, on tensors borrowed once (private helpers of the package)."""
        value, grad = torch.empty(()), torch.empty_like(x)
        held = [_dlpack.take(a) for a in (x, t, value, grad)]
        ptrs = [b.pointer() for b in held]
        h = loss._handle
        lib = h._lib

        def call():
            return lib.compute(h.ptr, ptrs[0], ptrs[1], None, ptrs[2], ptrs[3], 1.0, None, 0,
                               None)
        assert call() == 0
        return call, held

    tiny_call, keep_tiny = bare_call(tiny_x, tiny_t)
    rows.append(("tiny call, C only (ctypes)", median_us(tiny_call, repeat=3000)))

    # 2. Threads
    x, t = torch.randn(8, 4, 128, 128), torch.randint(0, 4, (8, 128, 128))
    big_call, keep_big = bare_call(x, t)
    rows.append(("8x4x128x128 C call, back to back", median_us(big_call)))
    rows.append(("8x4x128x128 C call, after 1 ms idle", median_us(big_call, idle_s=1e-3)))

    def woken_call():
        culoss.set_num_threads(args.threads)
        until = time.perf_counter() + 40e-6
        while time.perf_counter() < until:
            pass
        return big_call()
    rows.append(("8x4x128x128 C call, after 1 ms idle, count set 40 us before (incl. the 40 us)",
                 median_us(woken_call, idle_s=1e-3)))

    # what setting the count (which wakes the pool) costs the calling thread itself, `idle_s`
    # after a call
    def set_count_after(idle_s):
        big_call()
        until = time.perf_counter() + idle_s
        while time.perf_counter() < until:
            pass
        t0 = time.perf_counter()
        culoss.set_num_threads(args.threads)
        return time.perf_counter() - t0

    for idle_s, state in ((0.0, "awake (just after a call)"), (1e-3, "asleep (1 ms after a call)")):
        rows.append(("culoss.set_num_threads, its threads " + state,
                     statistics.median(set_count_after(idle_s) for _ in range(300)) * 1e6))

    # 3. PyTorch's engine around a custom Function
    xg = torch.randn(8, 4, 128, 128, requires_grad=True)
    other_x, other_t = torch.randn(8, 4, 128, 128), torch.randint(0, 4, (8, 128, 128))

    def function(with_culoss):
        class Trivial(torch.autograd.Function):
            @staticmethod
            def forward(ctx, inp):
                if with_culoss:
                    loss(other_x, other_t, None, grad=True)
                g = torch.empty_like(inp).fill_(0.1)
                ctx.save_for_backward(g)
                return inp.sum()

            @staticmethod
            def backward(ctx, grad_out):
                (g,) = ctx.saved_tensors
                return g
        return Trivial

    for with_culoss in (False, True):
        fn = function(with_culoss)
        times = []
        for i in range(320):
            xg.grad = None
            out = fn.apply(xg)
            t0 = time.perf_counter()
            out.backward()
            if i >= 20:
                times.append(time.perf_counter() - t0)
        rows.append(("backward() of a trivial autograd.Function%s"
                     % (", its forward made a culoss call" if with_culoss else ""),
                     statistics.median(times) * 1e6))
    del keep_tiny, keep_big

    print("culoss %s, torch %s, %d threads" % (culoss.__version__, torch.__version__,
                                                args.threads))
    width = max(len(r[0]) for r in rows)
    for name, us in rows:
        print("%-*s  %8.1f us" % (width, name, us))


if __name__ == "__main__":
    main()
