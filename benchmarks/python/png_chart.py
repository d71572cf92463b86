"""A bar chart as a PNG without matplotlib: the fallback of bench_vs_torch.py.

The GPU machine this benchmark runs on has no network, so its Python may lack matplotlib. This
module draws the same information with the standard library only: one horizontal bar per timed
row (log scale of the median milliseconds, coloured by mode: culoss, eager, torch.compile), the
row's number in the results.md table on the left, and its time in ms at the end of the bar. Text
uses a built-in 3x5 pixel font of the digits and a few signs, scaled up, so the labels are numbers
only; results.md names the rows. The PNG is written with zlib and struct (RGB, 8 bits, no filter).
"""

import math
import struct
import zlib

# 3x5 glyphs, one string of 5 rows of 3 bits each ('#' = ink). Digits, '.', '#', '-', ' ', 'x'.
_GLYPHS = {
    "0": ["###", "#.#", "#.#", "#.#", "###"],
    "1": [".#.", "##.", ".#.", ".#.", "###"],
    "2": ["###", "..#", "###", "#..", "###"],
    "3": ["###", "..#", ".##", "..#", "###"],
    "4": ["#.#", "#.#", "###", "..#", "..#"],
    "5": ["###", "#..", "###", "..#", "###"],
    "6": ["###", "#..", "###", "#.#", "###"],
    "7": ["###", "..#", "..#", ".#.", ".#."],
    "8": ["###", "#.#", "###", "#.#", "###"],
    "9": ["###", "#.#", "###", "..#", "###"],
    ".": ["...", "...", "...", "...", ".#."],
    "-": ["...", "...", "###", "...", "..."],
    "x": ["...", "#.#", ".#.", "#.#", "..."],
    "#": ["#.#", "###", "#.#", "###", "#.#"],
    " ": ["...", "...", "...", "...", "..."],
}

COLORS = {"culoss": (27, 120, 55), "eager": (118, 42, 131), "compile": (224, 130, 20)}
_GREY = (150, 150, 150)
_INK = (30, 30, 30)
_GRID = (225, 225, 225)


class Canvas:
    def __init__(self, width, height, background=(255, 255, 255)):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x0, y0, x1, y1, color):
        """Fills [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, int(x0)), min(self.width, int(x1))
        y0, y1 = max(0, int(y0)), min(self.height, int(y1))
        if x0 >= x1:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            start = 3 * (y * self.width + x0)
            self.pixels[start:start + len(row)] = row

    def text(self, x, y, s, scale=2, color=_INK):
        """Draws s (characters outside the font become spaces) with its top-left at (x, y)."""
        for ch in s:
            glyph = _GLYPHS.get(ch, _GLYPHS[" "])
            for gy, line in enumerate(glyph):
                for gx, bit in enumerate(line):
                    if bit == "#":
                        self.rect(x + gx * scale, y + gy * scale, x + (gx + 1) * scale,
                                  y + (gy + 1) * scale, color)
            x += 4 * scale

    def png(self):
        raw = bytearray()
        stride = 3 * self.width
        for y in range(self.height):
            raw.append(0)  # filter type 0 (none)
            raw += self.pixels[y * stride:(y + 1) * stride]

        def chunk(tag, data):
            body = tag + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def text_width(s, scale=2):
    return 4 * scale * len(s)


def bar_chart(bars, path, width=900, bar_height=14, gap=4):
    """bars: list of (number, milliseconds, mode). Writes a log-scale horizontal bar chart.

    The axis spans whole decades around the data; a light vertical line marks each decade,
    labelled with its value in ms at the bottom.
    """
    bars = [(n, ms, mode) for n, ms, mode in bars if ms and ms > 0 and math.isfinite(ms)]
    if not bars:
        raise ValueError("nothing to draw")
    lo = math.floor(math.log10(min(ms for _, ms, _ in bars)))
    hi = math.ceil(math.log10(max(ms for _, ms, _ in bars)))
    if hi == lo:
        hi += 1
    left, right, top, bottom = 60, 110, 10, 30
    height = top + bottom + len(bars) * (bar_height + gap)
    c = Canvas(width, height)
    plot_w = width - left - right

    def x_of(ms):  # log scale; a bar starts at the lowest decade
        return left + plot_w * (math.log10(ms) - lo) / (hi - lo)

    for d in range(lo, hi + 1):
        x = x_of(10.0 ** d)
        c.rect(x, top, x + 1, height - bottom + 4, _GRID)
        label = "1" + "0" * d if d >= 0 else "0." + "0" * (-d - 1) + "1"
        c.text(x - text_width(label) / 2, height - bottom + 8, label)
    for i, (number, ms, mode) in enumerate(bars):
        y = top + i * (bar_height + gap)
        c.text(left - 8 - text_width("#%d" % number), y + 2, "#%d" % number)
        x1 = max(x_of(ms), left + 2)
        c.rect(left, y, x1, y + bar_height, COLORS.get(mode, _GREY))
        c.text(x1 + 6, y + 2, "%.3f" % ms if ms < 100 else "%.0f" % ms)
    with open(path, "wb") as f:
        f.write(c.png())
    return width, height
