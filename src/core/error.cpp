#include "core/error.hpp"

namespace culoss {
namespace {
thread_local std::string g_last_error;
}

void set_last_error(const std::string& message) {
  try {
    g_last_error = message;
  } catch (...) {
    g_last_error.clear();  // no memory for the message: an empty one beats an exception
  }
}
void clear_last_error() { g_last_error.clear(); }
const char* last_error() { return g_last_error.c_str(); }

}  // namespace culoss
