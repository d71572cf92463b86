#!/usr/bin/env python3
"""Summary of the interleaved before/after runs of this folder (run.sh): summary.md.

Per (loss, shape, implementation, config): the median over the runs of each run's median
(20 timed calls). culoss rows are split by version (before = main, after = issue16); a peer
does not depend on culoss, so its rows of every run (before and after) are pooled.
"""
import glob
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else HERE


def load_vs_torch():
    rows = []
    for path in sorted(glob.glob(os.path.join(OUT, "vs_torch", "*", "results.json"))):
        label = os.path.basename(os.path.dirname(path))  # before-r1, after-r2, compile-...
        version = label.split("-")[0]
        with open(path) as f:
            data = json.load(f)
        for r in data["rows"]:
            if r.get("ms") is not None:
                rows.append(dict(r, version=version, run=label))
    return rows


def med(values):
    return statistics.median(values) if values else None


def fmt(v, f="%.2f"):
    return "–" if v is None else f % v


def main():
    rows = load_vs_torch()
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    lines = ["# CPU, before (main) and after (issue16), side by side with the peers", "",
             "Medians over the runs of each run's median of 20 forward + backward calls "
             "(culoss: per version; peers: every run pooled). `×` = time / culoss-after time "
             "with the same definition (`config`); > 1 means culoss is faster.", ""]
    lines += ["## Headline (culoss's default config of each loss)", "",
              "| loss | shape | culoss before ms | culoss after ms | after vs before | "
              "fastest eager peer | peer ms | peer / culoss after | fastest torch.compile peer "
              "| ms | peer / culoss after |",
              "|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|"]
    detail = ["", "## Every row", "",
              "| loss | shape | implementation | mode | config | runs | median ms | "
              "× vs culoss after |", "|---|---|---|---|---|---:|---:|---:|"]
    for shape in shapes:
        for loss in losses:
            rs = [r for r in rows if r["shape"] == shape and r["loss"] == loss]
            if not rs:
                continue
            culoss = {}
            for v in ("before", "after"):
                for r in rs:
                    if r["mode"] == "culoss" and r["version"] == v:
                        culoss.setdefault((v, r["config"]), []).append(r["ms"])
            after = {cfg: med(ms) for (v, cfg), ms in culoss.items() if v == "after"}
            peers = {}
            for r in rs:
                if r["mode"] != "culoss":
                    peers.setdefault((r["impl"], r["mode"], r["config"]), []).append(r["ms"])
            for (v, cfg), ms in sorted(culoss.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                detail.append("| %s | %s | culoss %s | culoss | `%s` | %d | %s | %s |" % (
                    loss, shape, v, cfg, len(ms), fmt(med(ms), "%.3f"),
                    fmt(med(ms) / after[cfg] if after.get(cfg) else None, "%.2f×")))
            best, best_c = None, None
            for (impl, mode, cfg), ms in peers.items():
                m = med(ms)
                ratio = m / after[cfg] if after.get(cfg) else None
                detail.append("| %s | %s | %s | %s | `%s` | %d | %s | %s |" % (
                    loss, shape, impl, mode, cfg, len(ms), fmt(m, "%.3f"), fmt(ratio, "%.2f×")))
                if mode == "eager" and (best is None or m < best[1]):
                    best = (impl, m, cfg)
                if mode == "compile" and (best_c is None or m < best_c[1]):
                    best_c = (impl, m, cfg)
            default = min(after, key=len) if after else None  # the shortest config: defaults
            b = med(culoss.get(("before", default), []))
            a = after.get(default)
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                loss, shape, fmt(b, "%.1f"), fmt(a, "%.1f"),
                fmt(b / a if a and b else None, "%.2f×"), best[0] if best else "–",
                fmt(best[1] if best else None, "%.2f"),
                fmt(best[1] / after[best[2]] if best and after.get(best[2]) else None,
                    "%.2f×"), best_c[0] if best_c else "–",
                fmt(best_c[1] if best_c else None, "%.2f"),
                fmt(best_c[1] / after[best_c[2]] if best_c and after.get(best_c[2]) else None,
                    "%.2f×")))
    gb = gbench_lines()
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write("\n".join(lines + detail + gb) + "\n")
    print("\n".join(lines))


def gbench_runs(folder, label_of):
    """{benchmark name: {label: [real_time ms of each run]}} of the JSON files in folder."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(OUT, folder, "*.json"))):
        label = label_of(os.path.basename(path))
        try:
            with open(path) as f:
                data = json.load(f)
        except ValueError:  # a run still writing it
            continue
        for b in data["benchmarks"]:
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            runs.setdefault(b["name"], {}).setdefault(label, []).append(
                b["real_time"] / 1e3 if b["time_unit"] == "us" else b["real_time"])
    return runs


def gbench_table(runs, a_label, b_label, title, note):
    if not runs:
        return []
    out = ["", title, "", note, "",
           "| benchmark | %s ms | %s ms | %s vs %s |" % (a_label, b_label, b_label, a_label),
           "|---|---:|---:|---:|"]
    for name, v in runs.items():
        a, b = med(v.get(a_label, [])), med(v.get(b_label, []))
        out.append("| %s | %s | %s | %s |" % (name.replace("/real_time", ""), fmt(a, "%.2f"),
                                              fmt(b, "%.2f"),
                                              fmt(a / b if a and b else None, "%.2f×")))
    return out


def gbench_lines():
    version = gbench_runs("gbench", lambda f: f.split("-")[0])
    threads = gbench_runs("threads", lambda f: "%s thread(s)" % f.split("-")[0][1:])
    return (gbench_table(version, "before", "after",
                         "## Google Benchmark, CPU cases (`culoss_bench --benchmark_filter=^cpu/`)",
                         "Wall-clock ms per call (real_time), median over the runs; after at "
                         "the default thread count (2 here).") +
            gbench_table(threads, "1 thread(s)", "2 thread(s)",
                         "## The after build at 1 and 2 threads (`CULOSS_NUM_THREADS`)",
                         "Wall-clock ms per call, median over 3 interleaved runs."))


if __name__ == "__main__":
    main()
