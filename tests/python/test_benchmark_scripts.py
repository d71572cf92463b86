"""The Python side-by-side benchmark runs end to end (tiny shapes, CPU) and writes its outputs.

These tests check that the script works, not how fast anything is: the numbers come from a GPU
machine (tools/gpu_check.sh). The run needs PyTorch and is skipped without it; the chart
fallback needs nothing but the standard library.
"""

import os
import struct
import subprocess
import sys
import zlib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "benchmarks", "python")


def read_png(path):
    """Returns (width, height, rows of RGB bytes) of an 8-bit RGB PNG with filter 0 lines."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        chunks.setdefault(tag, b"")
        chunks[tag] += body
        pos += 12 + length
    width, height, depth, color, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    return width, height, [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]


def test_png_chart_draws_one_bar_per_row_in_its_mode_colour(tmp_path):
    sys.path.insert(0, BENCH)
    try:
        import png_chart
    finally:
        sys.path.remove(BENCH)
    bars = [(1, 0.5, "culoss"), (2, 12.0, "eager"), (3, 3.0, "compile"), (4, None, "eager")]
    path = str(tmp_path / "chart.png")
    width, height = png_chart.bar_chart(bars, path)
    w, h, rows = read_png(path)
    assert (w, h) == (width, height)
    # Each drawn bar is a run of its mode's colour on its own line; the untimed row is left out.
    lengths = []
    for number, mode in [(1, "culoss"), (2, "eager"), (3, "compile")]:
        y = 10 + (number - 1) * (14 + 4) + 7  # top margin, bar height + gap, middle of the bar
        colour = bytes(png_chart.COLORS[mode])
        pixels = [rows[y][3 * x:3 * x + 3] for x in range(w)]
        lengths.append(sum(1 for p in pixels if p == colour))
    assert all(n > 0 for n in lengths)
    assert lengths[0] < lengths[2] < lengths[1]  # log scale keeps the order of the times
    with pytest.raises(ValueError):
        png_chart.bar_chart([(1, None, "eager")], path)


def test_bench_vs_torch_quick_cpu_run_writes_table_json_and_chart(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "bvt"
    cmd = [sys.executable, os.path.join(BENCH, "bench_vs_torch.py"), "--device", "cpu",
           "--quick", "--no-compile", "--shapes", "2x3x16x16,2x1x16x16",
           "--losses", "dice,ce,bce,lovasz_softmax,lovasz_hinge,mcc,topk_ce", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ["results.md", "results.json", "chart.png"]:
        assert (out / name).is_file(), name
    table = (out / "results.md").read_text()
    for loss in ["dice", "ce", "bce", "lovasz_softmax", "lovasz_hinge", "mcc", "topk_ce"]:
        assert "| %s |" % loss in table
    assert "FAILED" not in table
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # matplotlib's or ours
