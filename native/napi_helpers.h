/*
 * Helpers shared by Atoll's N-API addons (atoll_native.c, atoll_seccomp.c): errors shaped like
 * Node's system errors, and argument plumbing. Header-only (static functions), so each addon
 * stays one translation unit. Include it after defining _GNU_SOURCE (strerrorname_np).
 */
#ifndef ATOLL_NAPI_HELPERS_H
#define ATOLL_NAPI_HELPERS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <node_api.h>

/* Any N-API failure here is a programming error or an exception already pending: unwind quietly. */
#define NAPI_CALL(env, call)                                                                      \
  do {                                                                                            \
    if ((call) != napi_ok) return NULL;                                                           \
  } while (0)

static inline const char *errno_name(int err) {
  const char *name = strerrorname_np(err);
  return name != NULL ? name : "EUNKNOWN";
}

/* Shaped like Node's own system errors (code, errno, syscall) so JS can classify without parsing. */
static inline napi_value throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s failed%s%s: %s (%s)", syscall, detail[0] ? " for " : "", detail,
           strerror(err), errno_name(err));
  napi_value code, message, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok) {
    napi_throw_error(env, errno_name(err), msg);
    return NULL;
  }
  if (napi_create_int32(env, -err, &errno_value) == napi_ok)
    napi_set_named_property(env, error, "errno", errno_value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return NULL;
}

static inline napi_value make_int(napi_env env, int64_t value) {
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, value, &result));
  return result;
}

static inline int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  /* Missing arguments arrive as undefined and then fail the type checks below. */
  return 1;
}

#endif
