// The one error path: internal code throws culoss::Error; the C boundary (guard) turns any
// exception into a status and the thread's last-error message.
#pragma once

#include <culoss/culoss.h>

#include <exception>
#include <sstream>
#include <string>
#include <utility>

namespace culoss {

class Error : public std::exception {
 public:
  Error(culoss_status status, std::string message)
      : status_(status), message_(std::move(message)) {}
  culoss_status status() const { return status_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  culoss_status status_;
  std::string message_;
};

// Builds a message from stream-able parts: fail(CULOSS_ERROR_SHAPE_MISMATCH, "target has ", n).
template <class... Parts>
[[noreturn]] void fail(culoss_status status, const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(status, os.str());
}

void set_last_error(const std::string& message);
void clear_last_error();
const char* last_error();  // this thread's message, never NULL

// Runs `body` (returning void) and maps every exception to a status. Never throws.
template <class Body>
culoss_status guard(Body&& body) noexcept {
  try {
    clear_last_error();
    body();
    return CULOSS_SUCCESS;
  } catch (const Error& e) {
    set_last_error(e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return CULOSS_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string("internal error: ") + e.what());
    return CULOSS_ERROR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return CULOSS_ERROR_INTERNAL;
  }
}

}  // namespace culoss
