#!/usr/bin/env python3
"""CPU time per forward + backward on ONE thread (PyTorch and culoss alike), a measure of the
work done that a loaded machine disturbs far less than wall-clock time: time.process_time()
(CLOCK_PROCESS_CPUTIME_ID) over `--calls` calls after warm-up, median of `--rounds` rounds, the
implementations interleaved round by round. Peers as in bench_vs_torch.py, configured to
culoss's definition: F.cross_entropy; MONAI DiceLoss / DiceCELoss / TverskyLoss with softmax and
one-hot targets; F.binary_cross_entropy_with_logits on a dense 0/1 float target.

    python3 cpu_time.py [--shapes 8x4x128x128,2x4x64x64x64] [--out cpu_time.md]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import culoss
import culoss.torch as ct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="8x4x128x128,2x4x64x64x64")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--losses", default="cross-entropy,Dice,Dice + CE,Tversky,BCE")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # culoss.torch follows torch.get_num_threads()
    import monai.losses as ml
    rows = []
    for spec in args.shapes.split(","):
        shape = [int(s) for s in spec.split("x")]
        g = torch.Generator().manual_seed(0)
        x = torch.randn(*shape, generator=g).requires_grad_()
        y = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=g)
        dense = (torch.rand(shape, generator=g) < 0.3).float()
        md = ml.DiceLoss(softmax=True, to_onehot_y=True)
        mdc = ml.DiceCELoss(softmax=True, to_onehot_y=True)
        mt = ml.TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7)
        pairs = [
            ("cross-entropy", ct.CrossEntropyLoss(), "F.cross_entropy", F.cross_entropy),
            ("Dice", ct.DiceLoss(), "MONAI DiceLoss", lambda a, b: md(a, b.unsqueeze(1))),
            ("Dice + CE", ct.LossModule(culoss.Dice() + culoss.CrossEntropy()),
             "MONAI DiceCELoss", lambda a, b: mdc(a, b.unsqueeze(1))),
            ("Tversky", ct.TverskyLoss(alpha=0.3, beta=0.7), "MONAI TverskyLoss",
             lambda a, b: mt(a, b.unsqueeze(1))),
            ("BCE", ct.BCELoss(), "F.binary_cross_entropy_with_logits",
             F.binary_cross_entropy_with_logits),
        ]
        for name, mine, peer_name, peer in pairs:
            if name not in args.losses.split(","):
                continue
            target = dense if name == "BCE" else y

            def step(fn):
                x.grad = None
                fn(x, target).backward()
            times = {"culoss": [], "peer": []}
            for fn in (mine, peer):
                for _ in range(3):
                    step(fn)
            for _ in range(args.rounds):
                for key, fn in (("culoss", mine), ("peer", peer)):
                    t0 = time.process_time()
                    for _ in range(args.calls):
                        step(fn)
                    times[key].append((time.process_time() - t0) / args.calls * 1e3)
            c, p = statistics.median(times["culoss"]), statistics.median(times["peer"])
            rows.append((spec, name, c, peer_name, p))
            print("%-14s %-14s culoss %8.3f ms   %-18s %8.3f ms   %.2fx" % (spec, name, c,
                                                                           peer_name, p, p / c),
                  flush=True)
    lines = ["| shape | loss | culoss CPU ms | peer | peer CPU ms | peer / culoss |",
             "|---|---|---:|---|---:|---:|"]
    for spec, name, c, peer_name, p in rows:
        lines.append("| %s | %s | %.3f | %s | %.3f | %.2f× |" % (spec, name, c, peer_name, p,
                                                                 p / c))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
