"""Memory of clDice against its iteration count, on the CPU: culoss against MONAI.

For each iteration count, a fresh process makes one forward + backward of clDice (softmax,
micro average) on 4x3x128x128 float32 logits and reports how far its peak resident memory
(ru_maxrss) rose during the call, over a warm-up call with one iteration. culoss also reports
its workspace (culoss_workspace_size), which holds everything the call needs besides the
input, the target and the gradient.

    python cldice_memory.py [--out FILE.md]
"""
import argparse
import json
import subprocess
import sys

SHAPE = (4, 3, 128, 128)
ITERATIONS = (1, 3, 10, 25, 50)

CHILD = r"""
import json, resource, sys
import torch
which, iters = sys.argv[1], int(sys.argv[2])
N, C, H, W = %r
g = torch.Generator().manual_seed(0)
x = (torch.randn((N, C, H, W), generator=g) * 1.5).requires_grad_()
t = torch.randint(0, C, (N, H, W), generator=g)
if which == "culoss":
    import culoss, culoss.torch
    def make(k):
        return culoss.torch.ClDiceLoss(iterations=k, average="micro")
    ws = culoss.ClDice(iterations=iters, average="micro").workspace_size(x.detach(), t)
    run = lambda f: f(x, t)
else:
    from monai.losses import SoftclDiceLoss
    def make(k):
        return SoftclDiceLoss(iter_=k, softmax=True, to_onehot_y=True, smooth=1e-12)
    ws = None
    run = lambda f: f(x, t[:, None])
warm = make(1)
run(warm).backward()  # libraries loaded, allocator warm
x.grad = None
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run(make(iters)).backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rise_kib": after - before, "workspace": ws}))
""" % (SHAPE,)


def measure(which, iters):
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(iters)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    lines = ["| iterations | culoss workspace MiB | culoss peak rise MiB | MONAI peak rise MiB |",
             "|---:|---:|---:|---:|"]
    for k in ITERATIONS:
        c, m = measure("culoss", k), measure("monai", k)
        lines.append("| %d | %.1f | %.1f | %.1f |" % (k, c["workspace"] / 2**20,
                                                     c["rise_kib"] / 1024, m["rise_kib"] / 1024))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
