/*
 * atoll_native: the few Linux syscalls the `node` tender needs for TAP networking that Node's
 * own APIs cannot express (TUNSETIFF on /dev/net/tun, SIOCGIFMTU, non-blocking read/write on a
 * raw fd without libuv, and ppoll with a nanosecond timeout over several fds at once).
 *
 * Plain C against node_api.h so that it builds with nothing but Node's headers and a C compiler.
 * I/O calls report failures as negative errno values instead of exceptions: the tender passes
 * them through to the base ABI unchanged, and a hot frame loop should not pay for exceptions.
 * Only tapOpen/ifMtu/close throw, because they are setup calls where a message matters.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include <node_api.h>

/* One bit per fd in poll's result, and the result must stay exact as a JS number. */
#define MAX_POLL_FDS 32
/* ppoll accepts longer waits, but an accidental huge timeout should not wedge the tender. */
#define MAX_POLL_NS 3600e9

/* Any N-API failure here is a programming error or an exception already pending: unwind quietly. */
#define NAPI_CALL(env, call)                                                                      \
  do {                                                                                            \
    if ((call) != napi_ok) return NULL;                                                           \
  } while (0)

static const char *errno_name(int err) {
  const char *name = strerrorname_np(err);
  return name != NULL ? name : "EUNKNOWN";
}

/* Shaped like Node's own system errors (code, errno, syscall) so JS can classify without parsing. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  char msg[256];
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

static napi_value make_int(napi_env env, int64_t value) {
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, value, &result));
  return result;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  /* Missing arguments arrive as undefined and then fail the type checks below. */
  return 1;
}

static int get_fd(napi_env env, napi_value value, int *fd) {
  napi_valuetype type;
  double number;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type != napi_number) {
    napi_throw_type_error(env, NULL, "fd must be a number");
    return 0;
  }
  if (napi_get_value_double(env, value, &number) != napi_ok) return 0;
  if (!(number >= 0 && number <= INT_MAX) || number != floor(number)) {
    napi_throw_range_error(env, NULL, "fd must be a non-negative 32-bit integer");
    return 0;
  }
  *fd = (int)number;
  return 1;
}

/* Fills an ifreq name; the kernel needs room for the terminating NUL, hence IFNAMSIZ - 1. */
static int get_ifname(napi_env env, napi_value value, char name[IFNAMSIZ]) {
  napi_valuetype type;
  size_t length;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type != napi_string) {
    napi_throw_type_error(env, NULL, "interface name must be a string");
    return 0;
  }
  /* Measure first: a short buffer would silently truncate at a UTF-8 character boundary. */
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return 0;
  if (length > IFNAMSIZ - 1) {
    napi_throw_range_error(env, "ENAMETOOLONG", "interface name must be at most 15 bytes");
    return 0;
  }
  if (napi_get_value_string_utf8(env, value, name, IFNAMSIZ, &length) != napi_ok) return 0;
  if (length == 0 || strlen(name) != length) {
    napi_throw_range_error(env, "EINVAL", "interface name must be non-empty without NUL characters");
    return 0;
  }
  return 1;
}

/* Buffer is a Uint8Array too, so both are accepted; other typed arrays would make lengths ambiguous. */
static int get_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_typedarray;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok) return 0;
  if (is_typedarray) {
    /* data already points at byteOffset, and length counts elements (= bytes for Uint8Array). */
    if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return 0;
    if (type == napi_uint8_array) return 1;
  }
  napi_throw_type_error(env, NULL, "buffer must be a Uint8Array");
  return 0;
}

static napi_value tap_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[IFNAMSIZ];
  if (!get_args(env, info, 1, argv) || !get_ifname(env, argv[0], name)) return NULL;

  /* TUNSETIFF would silently create a fresh, non-persistent tap; the tender must only attach to
   * an interface the operator set up (addresses, bridges, firewall), so refuse unknown names. */
  unsigned index = if_nametoindex(name);
  if (index == 0) {
    int err = errno == ENXIO ? ENODEV : errno;
    return throw_errno(env, err, "if_nametoindex", name);
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", "/dev/net/tun");

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, strlen(name) + 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "ioctl(TUNSETIFF)", name);
  }
  /* If the interface vanished between the lookup and the ioctl, TUNSETIFF just created a new
   * transient one; closing our only fd destroys it again. */
  if (if_nametoindex(name) != index) {
    close(fd);
    return throw_errno(env, ENODEV, "ioctl(TUNSETIFF)", name);
  }
  return make_int(env, fd);
}

static napi_value if_mtu(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[IFNAMSIZ];
  if (!get_args(env, info, 1, argv) || !get_ifname(env, argv[0], name)) return NULL;

  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return throw_errno(env, errno, "socket", "");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, strlen(name) + 1);
  int rc = ioctl(sock, SIOCGIFMTU, &ifr);
  int err = errno;
  close(sock);
  if (rc < 0) return throw_errno(env, err, "ioctl(SIOCGIFMTU)", name);
  return make_int(env, ifr.ifr_mtu);
}

static napi_value fd_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  void *data;
  size_t length;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_bytes(env, argv[1], &data, &length))
    return NULL;
  ssize_t n;
  do n = read(fd, data, length);
  while (n < 0 && errno == EINTR);
  return make_int(env, n < 0 ? -errno : n);
}

static napi_value fd_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  void *data;
  size_t length;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_bytes(env, argv[1], &data, &length))
    return NULL;
  ssize_t n;
  do n = write(fd, data, length);
  while (n < 0 && errno == EINTR);
  return make_int(env, n < 0 ? -errno : n);
}

static napi_value fds_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool is_typedarray;
  napi_typedarray_type type;
  size_t count;
  void *data;
  napi_valuetype timeout_type;
  double timeout_ns;
  if (!get_args(env, info, 2, argv)) return NULL;
  NAPI_CALL(env, napi_is_typedarray(env, argv[0], &is_typedarray));
  if (is_typedarray)
    NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &type, &count, &data, NULL, NULL));
  if (!is_typedarray || type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "fds must be an Int32Array");
    return NULL;
  }
  NAPI_CALL(env, napi_typeof(env, argv[1], &timeout_type));
  if (timeout_type != napi_number) {
    napi_throw_type_error(env, NULL, "timeoutNs must be a number");
    return NULL;
  }
  NAPI_CALL(env, napi_get_value_double(env, argv[1], &timeout_ns));
  if (count > MAX_POLL_FDS) return make_int(env, -EINVAL);

  /* Copied out because the JS array may be detached or resized by another thread meanwhile. */
  struct pollfd pfds[MAX_POLL_FDS];
  const int32_t *fds = data;
  for (size_t i = 0; i < count; i++) {
    pfds[i].fd = fds[i];
    pfds[i].events = POLLIN;
    pfds[i].revents = 0;
  }
  /* NaN and negative values mean "do not wait" rather than an error: callers compute deadlines. */
  if (!(timeout_ns > 0)) timeout_ns = 0;
  if (timeout_ns > MAX_POLL_NS) timeout_ns = MAX_POLL_NS;
  struct timespec ts;
  ts.tv_sec = (time_t)(timeout_ns / 1e9);
  ts.tv_nsec = (long)(timeout_ns - (double)ts.tv_sec * 1e9);
  if (ts.tv_nsec < 0) ts.tv_nsec = 0;
  if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;

  int rc = ppoll(pfds, count, &ts, NULL);
  if (rc < 0) return make_int(env, errno == EINTR ? 0 : -errno);
  uint32_t mask = 0;
  for (size_t i = 0; i < count; i++) {
    /* POLLNVAL counts as ready so that a caller polling a closed fd reads it and sees -EBADF,
     * instead of spinning on a poll that returns immediately with an empty set. */
    if (pfds[i].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) mask |= (uint32_t)1 << i;
  }
  napi_value result;
  NAPI_CALL(env, napi_create_uint32(env, mask, &result));
  return result;
}

static napi_value fd_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  /* On Linux the fd is released even when close reports EINTR/EIO, so only EBADF (a double close,
   * which could hit an fd reused by someone else) is worth reporting. */
  if (close(fd) < 0 && errno == EBADF) return throw_errno(env, EBADF, "close", "");
  return NULL;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"tapOpen", tap_open}, {"ifMtu", if_mtu}, {"read", fd_read},
      {"write", fd_write},   {"poll", fds_poll}, {"close", fd_close},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    NAPI_CALL(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return exports;
}
