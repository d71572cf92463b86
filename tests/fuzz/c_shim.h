/* See c_shim.c. Status values come back as int for the same reason. */
#ifndef CULOSS_FUZZ_C_SHIM_H_
#define CULOSS_FUZZ_C_SHIM_H_

#include <culoss/culoss.h>

#ifdef __cplusplus
extern "C" {
#endif

culoss_status fz_create(culoss_loss* out, int kind);
culoss_status fz_set_int(culoss_loss loss, int param, int64_t value);
culoss_status fz_set_float(culoss_loss loss, int param, double value);
culoss_status fz_set_floats(culoss_loss loss, int param, const double* values, int64_t count);
culoss_status fz_get_int(culoss_loss loss, int param, int64_t* value);
culoss_status fz_get_float(culoss_loss loss, int param, double* value);
const char* fz_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif
