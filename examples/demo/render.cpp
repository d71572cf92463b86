// culoss-demo: the canvas, the 5x7 font, the prediction grid and the training-curve plots.
#include "render.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace demo {

const Rgb kClassColors[kClasses] = {{24, 24, 28}, {230, 85, 60}, {70, 150, 235}, {250, 205, 40}};

namespace {

// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
const char kGlyphChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.,()/:=%_";
const uint8_t kGlyphs[][7] = {
    {14, 17, 17, 31, 17, 17, 17},  // A
    {30, 17, 17, 30, 17, 17, 30},  // B
    {14, 17, 16, 16, 16, 17, 14},  // C
    {30, 17, 17, 17, 17, 17, 30},  // D
    {31, 16, 16, 30, 16, 16, 31},  // E
    {31, 16, 16, 30, 16, 16, 16},  // F
    {14, 17, 16, 23, 17, 17, 15},  // G
    {17, 17, 17, 31, 17, 17, 17},  // H
    {14, 4, 4, 4, 4, 4, 14},       // I
    {7, 2, 2, 2, 2, 18, 12},       // J
    {17, 18, 20, 24, 20, 18, 17},  // K
    {16, 16, 16, 16, 16, 16, 31},  // L
    {17, 27, 21, 21, 17, 17, 17},  // M
    {17, 17, 25, 21, 19, 17, 17},  // N
    {14, 17, 17, 17, 17, 17, 14},  // O
    {30, 17, 17, 30, 16, 16, 16},  // P
    {14, 17, 17, 17, 21, 18, 13},  // Q
    {30, 17, 17, 30, 20, 18, 17},  // R
    {15, 16, 16, 14, 1, 1, 30},    // S
    {31, 4, 4, 4, 4, 4, 4},        // T
    {17, 17, 17, 17, 17, 17, 14},  // U
    {17, 17, 17, 17, 17, 10, 4},   // V
    {17, 17, 17, 21, 21, 21, 10},  // W
    {17, 17, 10, 4, 10, 17, 17},   // X
    {17, 17, 10, 4, 4, 4, 4},      // Y
    {31, 1, 2, 4, 8, 16, 31},      // Z
    {14, 17, 19, 21, 25, 17, 14},  // 0
    {4, 12, 4, 4, 4, 4, 14},       // 1
    {14, 17, 1, 2, 4, 8, 31},      // 2
    {31, 2, 4, 2, 1, 17, 14},      // 3
    {2, 6, 10, 18, 31, 2, 2},      // 4
    {31, 16, 30, 1, 1, 17, 14},    // 5
    {6, 8, 16, 30, 17, 17, 14},    // 6
    {31, 1, 2, 4, 8, 8, 8},        // 7
    {14, 17, 17, 14, 17, 17, 14},  // 8
    {14, 17, 17, 15, 1, 2, 12},    // 9
    {0, 4, 4, 31, 4, 4, 0},        // +
    {0, 0, 0, 31, 0, 0, 0},        // -
    {0, 0, 0, 0, 0, 12, 12},       // .
    {0, 0, 0, 0, 12, 4, 8},        // ,
    {2, 4, 8, 8, 8, 4, 2},         // (
    {8, 4, 2, 2, 2, 4, 8},         // )
    {0, 1, 2, 4, 8, 16, 0},        // /
    {0, 12, 12, 0, 12, 12, 0},     // :
    {0, 0, 31, 0, 31, 0, 0},       // =
    {24, 25, 2, 4, 8, 19, 3},      // %
    {0, 0, 0, 0, 0, 0, 31},        // _
};

const Rgb kWhite{255, 255, 255}, kInk{30, 30, 30}, kGrey{150, 150, 150}, kLight{225, 225, 225};

// "Nice" tick spacing: 1, 2 or 5 times a power of ten, about `n` ticks over `range`.
double tick_step(double range, int n) {
  const double raw = range / n, p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string format_tick(double v, double step) {
  char buf[32];
  if (step >= 1.0)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (step >= 0.1)
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

Canvas::Canvas(int width, int height, Rgb bg)
    : w_(width), h_(height), rgb_(size_t(width) * height * 3) {
  fill(0, 0, width, height, bg);
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
  uint8_t* p = &rgb_[(size_t(y) * w_ + x) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void Canvas::fill(int x, int y, int w, int h, Rgb c) {
  for (int j = std::max(0, y); j < std::min(h_, y + h); ++j)
    for (int i = std::max(0, x); i < std::min(w_, x + w); ++i) set(i, j, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness) {
  const double len = std::hypot(x1 - x0, y1 - y0);
  const int n = std::max(1, int(std::ceil(len * 2)));
  for (int k = 0; k <= n; ++k) {
    const double t = double(k) / n;
    const int x = int(std::lround(x0 + t * (x1 - x0))), y = int(std::lround(y0 + t * (y1 - y0)));
    fill(x - (thickness - 1) / 2, y - (thickness - 1) / 2, thickness, thickness, c);
  }
}

void Canvas::text(int x, int y, const std::string& s, Rgb c, int scale) {
  for (char ch : s) {
    const char u = char(std::toupper(static_cast<unsigned char>(ch)));
    const char* at = u ? std::strchr(kGlyphChars, u) : nullptr;
    if (at) {
      const uint8_t* g = kGlyphs[at - kGlyphChars];
      for (int r = 0; r < 7; ++r)
        for (int col = 0; col < 5; ++col)
          if (g[r] & (16 >> col)) fill(x + col * scale, y + r * scale, scale, scale, c);
    }
    x += 6 * scale;
  }
}

int Canvas::text_width(const std::string& s, int scale) {
  return s.empty() ? 0 : int(s.size()) * 6 * scale - scale;
}

void Canvas::blit(const Canvas& src, int x, int y) {
  for (int j = 0; j < src.h_; ++j)
    for (int i = 0; i < src.w_; ++i) {
      const uint8_t* p = &src.rgb_[(size_t(j) * src.w_ + i) * 3];
      set(x + i, y + j, Rgb{p[0], p[1], p[2]});
    }
}

Canvas render_grid(const Dataset& set, const std::vector<int>& images,
                   const std::vector<GridColumn>& columns) {
  const int S = set.size, scale = std::max(1, 96 / S), cell = S * scale;
  const int margin = 8, gap = 6, header = 30, footer = 24;
  std::vector<int> colw(columns.size() + 1, cell);
  colw[0] = std::max(cell, Canvas::text_width("INPUT"));
  for (size_t c = 0; c < columns.size(); ++c)
    colw[c + 1] = std::max(
        {cell, Canvas::text_width(columns[c].title), Canvas::text_width(columns[c].subtitle)});
  int width = 2 * margin - gap;
  for (int w : colw) width += w + gap;
  const int rows = int(images.size());
  const int height = margin + header + rows * (cell + gap) - gap + footer + margin;
  Canvas cv(width, height, kWhite);
  int x = margin;
  for (size_t c = 0; c <= columns.size(); ++c) {
    const std::string title = c == 0 ? "INPUT" : columns[c - 1].title;
    const std::string sub = c == 0 ? "" : columns[c - 1].subtitle;
    cv.text(x + (colw[c] - Canvas::text_width(title)) / 2, margin, title, kInk);
    cv.text(x + (colw[c] - Canvas::text_width(sub)) / 2, margin + 11, sub, kGrey);
    const int x0 = x + (colw[c] - cell) / 2;
    for (int r = 0; r < rows; ++r) {
      const int y0 = margin + header + r * (cell + gap);
      const int n = images[r];
      for (int py = 0; py < S; ++py)
        for (int px = 0; px < S; ++px) {
          Rgb color;
          if (c == 0) {
            const float v = set.image(n)[py * S + px];
            const int g = std::clamp(int(std::lround((v + 2.0f) * 64.0f)), 0, 255);
            color = Rgb{uint8_t(g), uint8_t(g), uint8_t(g)};
          } else {
            color = kClassColors[columns[c - 1].maps[r][py * S + px] % kClasses];
          }
          cv.fill(x0 + px * scale, y0 + py * scale, scale, scale, color);
        }
    }
    x += colw[c] + gap;
  }
  // Legend of the class colours.
  x = margin;
  const int y = height - margin - 10;
  for (int k = 0; k < kClasses; ++k) {
    cv.fill(x, y - 1, 9, 9, kClassColors[k]);
    cv.text(x + 13, y, kClassNames[k], kInk);
    x += 13 + Canvas::text_width(kClassNames[k]) + 18;
  }
  return cv;
}

Canvas render_plot(const std::string& title, const std::string& xlabel, double xmax, double ymin,
                   double ymax, const std::vector<Curve>& curves, int width, int height) {
  Canvas cv(width, height, kWhite);
  const int left = 40, right = 12, top = 22, bottom = 32;
  const int pw = width - left - right, ph = height - top - bottom;
  auto X = [&](double v) { return left + pw * v / xmax; };
  auto Y = [&](double v) {
    return top + ph * (1.0 - (std::clamp(v, ymin, ymax) - ymin) / (ymax - ymin));
  };
  cv.text((width - Canvas::text_width(title)) / 2, 6, title, kInk);
  const double ys = tick_step(ymax - ymin, 5), xs = tick_step(xmax, 6);
  for (double v = std::ceil(ymin / ys) * ys; v <= ymax + 1e-9; v += ys) {
    const int y = int(std::lround(Y(v)));
    cv.fill(left, y, pw, 1, kLight);
    const std::string s = format_tick(v, ys);
    cv.text(left - 4 - Canvas::text_width(s), y - 3, s, kInk);
  }
  for (double v = 0; v <= xmax + 1e-9; v += xs) {
    const int x = int(std::lround(X(v)));
    cv.fill(x, top, 1, ph, kLight);
    const std::string s = format_tick(v, xs);
    cv.text(x - Canvas::text_width(s) / 2, top + ph + 5, s, kInk);
  }
  cv.text(left + (pw - Canvas::text_width(xlabel)) / 2, height - 10, xlabel, kGrey);
  cv.fill(left, top, 1, ph + 1, kInk);
  cv.fill(left, top + ph, pw + 1, 1, kInk);
  for (const Curve& c : curves) {
    double run = 0.0;  // length walked along the polyline, for the dashes
    for (size_t k = 1; k < c.points.size(); ++k) {
      const double x0 = X(c.points[k - 1].first), y0 = Y(c.points[k - 1].second);
      const double x1 = X(c.points[k].first), y1 = Y(c.points[k].second);
      const double len = std::hypot(x1 - x0, y1 - y0);
      const int n = std::max(1, int(std::ceil(len * 2)));
      for (int j = 0; j < n; ++j) {
        const double t = double(j) / n;
        if (!c.dashed || std::fmod(run + t * len, 10.0) < 6.0)
          cv.line(x0 + t * (x1 - x0), y0 + t * (y1 - y0), x0 + t * (x1 - x0), y0 + t * (y1 - y0),
                  c.color, 2);
      }
      run += len;
    }
  }
  return cv;
}

Canvas render_legend(const std::vector<Curve>& curves, int width) {
  const int per_row = std::max(1, (width - 16) / 200),
            rows = (int(curves.size()) + per_row - 1) / per_row;
  Canvas cv(width, 12 + rows * 14, kWhite);
  for (size_t k = 0; k < curves.size(); ++k) {
    const int x = 16 + int(k % per_row) * 200, y = 6 + int(k / per_row) * 14;
    const Curve& c = curves[k];
    for (int i = 0; i < 22; ++i)
      if (!c.dashed || i % 10 < 6) cv.fill(x + i, y + 3, 1, 2, c.color);
    cv.text(x + 28, y, c.name, kInk);
  }
  return cv;
}

}  // namespace demo
