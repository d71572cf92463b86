// culoss-demo: pictures (an RGB canvas with a small bitmap font, the prediction grid, the
// training curves) and PNG output through libpng.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data.h"

namespace demo {

struct Rgb {
  uint8_t r, g, b;
};
extern const Rgb kClassColors[kClasses];

class Canvas {
 public:
  Canvas(int width, int height, Rgb background);
  int width() const { return w_; }
  int height() const { return h_; }
  const std::vector<uint8_t>& pixels() const { return rgb_; }  // row-major RGB8
  void set(int x, int y, Rgb c);
  void fill(int x, int y, int w, int h, Rgb c);
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1);
  // Text in a 5x7 font (upper case, digits, a few signs), top-left at (x, y).
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1);
  static int text_width(const std::string& s, int scale = 1);
  void blit(const Canvas& src, int x, int y);

 private:
  int w_, h_;
  std::vector<uint8_t> rgb_;
};

// One column of the prediction grid: a label map per row (size x size).
struct GridColumn {
  std::string title, subtitle;
  std::vector<std::vector<uint8_t>> maps;
};
// Rows: the given held-out images; columns: the input, then each GridColumn.
Canvas render_grid(const Dataset& set, const std::vector<int>& images,
                   const std::vector<GridColumn>& columns);

struct Curve {
  std::string name;
  Rgb color;
  bool dashed;
  std::vector<std::pair<double, double>> points;  // (step, value)
};
Canvas render_plot(const std::string& title, const std::string& xlabel, double xmax, double ymin,
                   double ymax, const std::vector<Curve>& curves, int width, int height);
// A legend box listing the curves.
Canvas render_legend(const std::vector<Curve>& curves, int width);

// True when the demo was built with libpng.
bool png_supported();
// Writes the canvas as an 8-bit RGB PNG. False with *error on failure (or without libpng).
bool write_png(const Canvas& canvas, const std::string& path, std::string* error);

}  // namespace demo
