/* C wrappers around the culoss calls that take enums: C callers may pass any int where the API
 * has an enum (culoss_kind, culoss_param, culoss_status), which in C++ would be undefined
 * behaviour of the caller (UBSan's -fsanitize=enum), not of the library. The fuzz target passes
 * its raw integers through here. */
#include <culoss/culoss.h>

#include "c_shim.h"

culoss_status fz_create(culoss_loss* out, int kind) {
  return culoss_loss_create(out, (culoss_kind)kind);
}
culoss_status fz_set_int(culoss_loss loss, int param, int64_t value) {
  return culoss_loss_set_int(loss, (culoss_param)param, value);
}
culoss_status fz_set_float(culoss_loss loss, int param, double value) {
  return culoss_loss_set_float(loss, (culoss_param)param, value);
}
culoss_status fz_set_floats(culoss_loss loss, int param, const double* values, int64_t count) {
  return culoss_loss_set_floats(loss, (culoss_param)param, values, count);
}
culoss_status fz_get_int(culoss_loss loss, int param, int64_t* value) {
  return culoss_loss_get_int(loss, (culoss_param)param, value);
}
culoss_status fz_get_float(culoss_loss loss, int param, double* value) {
  return culoss_loss_get_float(loss, (culoss_param)param, value);
}
const char* fz_status_string(int status) { return culoss_status_string((culoss_status)status); }
