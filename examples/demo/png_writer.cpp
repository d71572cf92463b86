// culoss-demo: PNG output with libpng (Debian: libpng-dev), when CMake found it.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "render.h"

#ifdef CULOSS_DEMO_WITH_PNG
#include <png.h>
#endif

namespace demo {

#ifdef CULOSS_DEMO_WITH_PNG
namespace {
char g_png_error[256];
void on_png_error(png_structp png, png_const_charp msg) {
  std::snprintf(g_png_error, sizeof g_png_error, "%s", msg);
  png_longjmp(png, 1);
}
void on_png_warning(png_structp, png_const_charp) {}

// Returns nullptr on success, else a message. No C++ object with a destructor lives across
// the setjmp.
const char* write_rows(std::FILE* f, int width, int height, const uint8_t* rgb) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, on_png_error, on_png_warning);
  if (!png) return "png_create_write_struct failed";
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return "png_create_info_struct failed";
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return g_png_error;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(rgb + size_t(y) * width * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return nullptr;
}
}  // namespace

bool png_supported() { return true; }

bool write_png(const Canvas& canvas, const std::string& path, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  const char* msg = write_rows(f, canvas.width(), canvas.height(), canvas.pixels().data());
  const bool closed = std::fclose(f) == 0;
  if (msg || !closed) {
    *error = path + ": " + (msg ? msg : std::strerror(errno));
    return false;
  }
  return true;
}
#else
bool png_supported() { return false; }

bool write_png(const Canvas&, const std::string& path, std::string* error) {
  *error = path + ": this culoss-demo was built without libpng (install libpng-dev and rebuild)";
  return false;
}
#endif

}  // namespace demo
