/*
 * atoll_native: the few Linux syscalls the `node` tender needs for TAP networking that Node's
 * own APIs cannot express (TUNSETIFF on /dev/net/tun, SIOCGIFMTU, non-blocking read/write on a
 * raw fd without libuv, and ppoll with a nanosecond timeout over several fds at once), and the
 * stop watchdog: a thread outside the JS thread that ends a busy appliance after a signal.
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
#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include <node_api.h>
#include <stdlib.h>
#include <uv.h>

/* One bit per fd in poll's result, and the result must stay exact as a JS number. */
#define MAX_POLL_FDS 32
/* ppoll accepts longer waits, but an accidental huge timeout should not wedge the tender. */
#define MAX_POLL_NS 3600e9

#include "napi_helpers.h"

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

/* Buffer is a Uint8Array too, so both are accepted; other typed arrays would make lengths ambiguous.
 * The pointer and length come from the engine's own record of the view (napi_get_typedarray_info
 * reads V8's internal slots), never from its JS `length` or `byteLength`, which a caller can
 * redefine with a getter that lies: no transfer here can reach past the real backing store. */
static int get_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_typedarray;
  napi_typedarray_type type;
  napi_value backing;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok) return 0;
  if (is_typedarray) {
    /* data already points at byteOffset, and length counts elements (= bytes for Uint8Array). */
    if (napi_get_typedarray_info(env, value, &type, length, data, &backing, NULL) != napi_ok) return 0;
    if (type == napi_uint8_array) {
      /* A detached view reads as length 0 with no memory behind it: refuse it rather than hand
       * the kernel a NULL buffer (a zero-length read on a TAP would consume and lose a frame).
       * napi_is_detached_arraybuffer is false for a SharedArrayBuffer, which is fine to use. */
      bool detached = false;
      if (napi_is_detached_arraybuffer(env, backing, &detached) != napi_ok) return 0;
      if (detached || (*data == NULL && *length > 0)) {
        napi_throw_type_error(env, "EINVAL", "buffer is detached");
        return 0;
      }
      return 1;
    }
  }
  napi_throw_type_error(env, NULL, "buffer must be a Uint8Array");
  return 0;
}

static napi_value tap_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[IFNAMSIZ];
  bool vnet_header = false;
  if (!get_args(env, info, 2, argv) || !get_ifname(env, argv[0], name)) return NULL;
  napi_valuetype flag_type;
  NAPI_CALL(env, napi_typeof(env, argv[1], &flag_type));
  if (flag_type == napi_boolean) NAPI_CALL(env, napi_get_value_bool(env, argv[1], &vnet_header));

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
  /* IFF_VNET_HDR: every frame read or written is preceded by a struct virtio_net_hdr, which is
   * how checksum and segmentation offloads are described (see tapSetOffload). */
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_header ? IFF_VNET_HDR : 0);
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

/* tapSetOffload(fd, flags): TUNSETOFFLOAD with TUN_F_* flags (0: none). With TUN_F_CSUM the kernel
 * may hand us frames whose transport checksum is partial and take ours the same way; with
 * TUN_F_TSO4 as well it may hand us and take TCP/IPv4 frames of up to 64 KiB, described by the
 * virtio_net_hdr. Only for a TAP opened with the vnet header. Returns 0 or a negative errno. */
static napi_value tap_set_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  uint32_t flags;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_uint32(env, argv[1], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "flags must be a non-negative integer");
    return NULL;
  }
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) return make_int(env, -errno);
  return make_int(env, 0);
}

/* read(fd, buf), write(fd, buf), readv2(fd, head, buf), writev2(fd, head, buf): one frame (a TAP,
 * the user-mode link's socketpair) moved in one system call, retried on EINTR. read and write
 * return the bytes moved. The v2 forms, for a vnet-header TAP, put the header in `head` and the
 * frame in `buf` without a copy: readv2 returns the frame's length (the bytes after the header),
 * writev2 the bytes of `buf` written. All return a negative errno on failure. */
static napi_value fd_transfer(napi_env env, napi_callback_info info, bool with_head, bool writing) {
  napi_value argv[3];
  size_t argc = with_head ? 3 : 2;
  int fd;
  void *head = NULL, *data;
  size_t head_length = 0, length;
  if (!get_args(env, info, argc, argv) || !get_fd(env, argv[0], &fd) ||
      (with_head && !get_bytes(env, argv[1], &head, &head_length)) ||
      !get_bytes(env, argv[argc - 1], &data, &length))
    return NULL;
  struct iovec iov[2] = {{head, head_length}, {data, length}};
  ssize_t n;
  do {
    /* Plain read and write without a head: the calls spt's seccomp allowlist names. */
    if (with_head) n = writing ? writev(fd, iov, 2) : readv(fd, iov, 2);
    else n = writing ? write(fd, data, length) : read(fd, data, length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return make_int(env, -errno);
  /* A transfer that does not even cover the header moved no frame. */
  return make_int(env, (size_t)n < head_length ? -EIO : n - (ssize_t)head_length);
}

static napi_value fd_read(napi_env env, napi_callback_info info) {
  return fd_transfer(env, info, false, false);
}

static napi_value fd_write(napi_env env, napi_callback_info info) {
  return fd_transfer(env, info, false, true);
}

static napi_value fd_readv2(napi_env env, napi_callback_info info) {
  return fd_transfer(env, info, true, false);
}

static napi_value fd_writev2(napi_env env, napi_callback_info info) {
  return fd_transfer(env, info, true, true);
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

/* ---- user-mode networking: the tender <-> gateway link (src/tenders/user/) ---- */

/* Each end asks for this much send buffer; the kernel caps it at net.core.wmem_max (unless root,
 * where SO_SNDBUFFORCE lifts the cap). A deep buffer is what lets TCP through the link go fast. */
#define LINK_SNDBUF (4 << 20)

/* socketpair(type): two connected AF_UNIX sockets that keep message boundaries (one Ethernet
 * frame per message), non-blocking and close-on-exec. type: "seqpacket" (default) or "dgram". */
static napi_value sock_pair(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int type = SOCK_SEQPACKET;
  napi_valuetype vt;
  NAPI_CALL(env, napi_typeof(env, argv[0], &vt));
  if (vt == napi_string) {
    char name[16];
    size_t length;
    NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length));
    if (strcmp(name, "dgram") == 0) type = SOCK_DGRAM;
    else if (strcmp(name, "seqpacket") != 0) {
      napi_throw_range_error(env, "EINVAL", "socketpair type must be \"seqpacket\" or \"dgram\"");
      return NULL;
    }
  } else if (vt != napi_undefined) {
    napi_throw_type_error(env, NULL, "socketpair type must be a string");
    return NULL;
  }
  int fds[2];
  if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
    return throw_errno(env, errno, "socketpair", "");
  for (int i = 0; i < 2; i++) {
    int size = LINK_SNDBUF;
    if (setsockopt(fds[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
      setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    size = LINK_SNDBUF;
    if (setsockopt(fds[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
      setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  napi_value result, a, b;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &result));
  NAPI_CALL(env, napi_create_int32(env, fds[0], &a));
  NAPI_CALL(env, napi_create_int32(env, fds[1], &b));
  NAPI_CALL(env, napi_set_element(env, result, 0, a));
  NAPI_CALL(env, napi_set_element(env, result, 1, b));
  return result;
}

/* waitWritable(fd, timeoutNs): 1 when fd can take a write, 0 on timeout or signal, -errno. */
static napi_value fd_wait_writable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  double timeout_ns;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_double(env, argv[1], &timeout_ns) != napi_ok) {
    napi_throw_type_error(env, NULL, "timeoutNs must be a number");
    return NULL;
  }
  if (!(timeout_ns > 0)) timeout_ns = 0;
  if (timeout_ns > MAX_POLL_NS) timeout_ns = MAX_POLL_NS;
  struct timespec ts;
  ts.tv_sec = (time_t)(timeout_ns / 1e9);
  ts.tv_nsec = (long)(timeout_ns - (double)ts.tv_sec * 1e9);
  if (ts.tv_nsec < 0) ts.tv_nsec = 0;
  if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
  struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
  int rc = ppoll(&pfd, 1, &ts, NULL);
  if (rc < 0) return make_int(env, errno == EINTR ? 0 : -errno);
  if (rc == 0) return make_int(env, 0);
  if (pfd.revents & POLLNVAL) return make_int(env, -EBADF);
  return make_int(env, 1);
}

/* A libuv poll watcher on a raw fd, for a process whose event loop must keep turning (the
 * gateway): the callback runs on the loop thread with the ready events (1 readable, 2 writable,
 * 4 error/hangup). */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  int closed;
} fd_watch;

static void watch_closed(uv_handle_t *handle) { free(handle->data); }

static void watch_fire(uv_poll_t *poll, int status, int events) {
  fd_watch *w = poll->data;
  if (w->closed) return;
  int mask = 0;
  if (status < 0) mask |= 4;
  if (events & UV_READABLE) mask |= 1;
  if (events & UV_WRITABLE) mask |= 2;
  if (events & UV_DISCONNECT) mask |= 4;
  napi_handle_scope scope;
  if (napi_open_handle_scope(w->env, &scope) != napi_ok) return;
  napi_value fn, global, arg, result;
  if (napi_get_reference_value(w->env, w->callback, &fn) == napi_ok && fn != NULL &&
      napi_get_global(w->env, &global) == napi_ok && napi_create_int32(w->env, mask, &arg) == napi_ok) {
    if (napi_call_function(w->env, global, fn, 1, &arg, &result) == napi_pending_exception) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(w->env, &exception) == napi_ok)
        napi_fatal_exception(w->env, exception);
    }
  }
  napi_close_handle_scope(w->env, scope);
}

static int uv_events(int mask) { return ((mask & 1) ? UV_READABLE : 0) | ((mask & 2) ? UV_WRITABLE : 0); }

static int get_watch(napi_env env, napi_value value, fd_watch **w) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type != napi_external) {
    napi_throw_type_error(env, NULL, "expected a watch handle");
    return 0;
  }
  if (napi_get_value_external(env, value, (void **)w) != napi_ok) return 0;
  return 1;
}

/* watch(fd, events, callback) → handle; the fd becomes non-blocking (libuv's rule). */
static napi_value fd_watch_start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int32_t events;
  napi_valuetype type;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_int32(env, argv[1], &events) != napi_ok) {
    napi_throw_type_error(env, NULL, "events must be a number");
    return NULL;
  }
  NAPI_CALL(env, napi_typeof(env, argv[2], &type));
  if (type != napi_function) {
    napi_throw_type_error(env, NULL, "callback must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  fd_watch *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "watch", "");
  w->env = env;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc < 0) {
    free(w);
    return throw_errno(env, -rc, "uv_poll_init", "");
  }
  w->poll.data = w;
  if (napi_create_reference(env, argv[2], 1, &w->callback) != napi_ok) {
    uv_close((uv_handle_t *)&w->poll, watch_closed);
    return NULL;
  }
  rc = uv_poll_start(&w->poll, uv_events(events), watch_fire);
  if (rc < 0) {
    napi_delete_reference(env, w->callback);
    uv_close((uv_handle_t *)&w->poll, watch_closed);
    return throw_errno(env, -rc, "uv_poll_start", "");
  }
  napi_value handle;
  NAPI_CALL(env, napi_create_external(env, w, NULL, NULL, &handle));
  return handle;
}

/* rewatch(handle, events): change the events watched (0 pauses). */
static napi_value fd_watch_change(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fd_watch *w;
  int32_t events;
  if (!get_args(env, info, 2, argv) || !get_watch(env, argv[0], &w)) return NULL;
  if (napi_get_value_int32(env, argv[1], &events) != napi_ok) {
    napi_throw_type_error(env, NULL, "events must be a number");
    return NULL;
  }
  if (w->closed) return NULL;
  if (events == 0) uv_poll_stop(&w->poll);
  else uv_poll_start(&w->poll, uv_events(events), watch_fire);
  return NULL;
}

/* unwatch(handle): stops and releases the watcher (idempotent); the fd stays open. */
static napi_value fd_watch_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  fd_watch *w;
  if (!get_args(env, info, 1, argv) || !get_watch(env, argv[0], &w)) return NULL;
  if (w->closed) return NULL;
  w->closed = 1;
  napi_delete_reference(env, w->callback);
  uv_poll_stop(&w->poll);
  /* The external keeps pointing at w; it must not be freed while JS can still pass it in, so a
   * stopped watcher is leaked deliberately (a few dozen bytes, once per link). */
  return NULL;
}

/* ---- the node tender's stop watchdog ----
 *
 * SIGINT, SIGTERM and SIGHUP must end the appliance even while its JS thread never returns to the
 * event loop (a busy loop, endless microtasks, a write blocked on a stalled stdout), where a
 * handler registered with process.on would never run. So the addon owns these three signals:
 *
 * - its handler (async-signal-safe only) records the first signal, wakes the event loop through
 *   a uv_async_t (uv_async_send is async-signal-safe), which calls the tender's JS callback: the
 *   orderly path (devices closed, capture flushed, exit 130/143/129), the normal one;
 * - and posts a semaphore that a watchdog thread waits on. If the process still exists after the
 *   grace period, the orderly path did not happen: the thread fsyncs the block devices' fds
 *   (safe from any thread), writes one line to stderr if it can take it at once, and
 *   _exit(128 + signal).
 * - A second signal, of any of the three, ends the process at once from the handler: whoever
 *   sends it insists. Data already written is in the kernel's page cache either way; fsync only
 *   adds durability against a host crash.
 *
 * libuv would also install handlers for these signals if JS called process.on for them, which
 * would silently replace ours: the node tender must not, and arms this once, after the image's
 * code has evaluated (a signal before that takes Node's default: the process dies of it). */

/* Block devices past this many are not synced by the watchdog (the tender attaches far fewer). */
#define STOP_MAX_SYNC_FDS 64
/* How long the watchdog waits for stderr to take its line before exiting without it. */
#define STOP_NOTE_WAIT_MS 100

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

static struct {
  int armed;
  /* The first signal received (0: none), written by the handler, read by the other threads. */
  int received;
  sem_t wake;
  uv_async_t async;
  napi_env env;
  napi_ref callback;
  double grace_ns;
  int sync_fds[STOP_MAX_SYNC_FDS];
  size_t sync_fd_count;
  char note_before[512];
  char note_after[512];
} stop;

static void stop_signal_handler(int signo) {
  int saved_errno = errno;
  int none = 0;
  if (!__atomic_compare_exchange_n(&stop.received, &none, signo, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
    _exit(128 + signo);
  uv_async_send(&stop.async);
  sem_post(&stop.wake);
  errno = saved_errno;
}

/* Writes all of `text` to fd 2 if it is writable within the wait; never blocks for long on a stalled pipe. */
static void stop_note(const char *text) {
  size_t length = strlen(text), done = 0;
  while (done < length) {
    struct pollfd pfd = {.fd = 2, .events = POLLOUT, .revents = 0};
    if (poll(&pfd, 1, STOP_NOTE_WAIT_MS) <= 0 || (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return;
    ssize_t n = write(2, text + done, length - done);
    if (n < 0 && errno != EINTR && errno != EAGAIN) return;
    if (n > 0) done += (size_t)n;
  }
}

static void *stop_watchdog(void *unused) {
  (void)unused;
  while (sem_wait(&stop.wake) != 0) {
  }
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  long long grace = (long long)stop.grace_ns;
  deadline.tv_sec += (time_t)(grace / 1000000000LL);
  deadline.tv_nsec += (long)(grace % 1000000000LL);
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
  }
  int signo = __atomic_load_n(&stop.received, __ATOMIC_SEQ_CST);
  /* The JS thread may have closed some of these meanwhile; fsync on a closed fd is a harmless EBADF. */
  for (size_t i = 0; i < stop.sync_fd_count; i++) fsync(stop.sync_fds[i]);
  const char *name = sigabbrev_np(signo);
  char line[1200];
  snprintf(line, sizeof line, "%sSIG%s%s", stop.note_before, name != NULL ? name : "?", stop.note_after);
  stop_note(line);
  _exit(128 + signo);
  return NULL;
}

static void stop_async_fire(uv_async_t *async) {
  (void)async;
  napi_env env = stop.env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, global, arg, result;
  if (napi_get_reference_value(env, stop.callback, &fn) == napi_ok && fn != NULL && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, __atomic_load_n(&stop.received, __ATOMIC_SEQ_CST), &arg) == napi_ok) {
    if (napi_call_function(env, global, fn, 1, &arg, &result) == napi_pending_exception) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* Copies a JS string into `out` (NUL-terminated); a longer one is refused rather than cut. */
static int get_note(napi_env env, napi_value value, char *out, size_t size) {
  napi_valuetype type;
  size_t length;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type != napi_string) {
    napi_throw_type_error(env, NULL, "notes must be strings");
    return 0;
  }
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return 0;
  if (length >= size) {
    napi_throw_range_error(env, "EINVAL", "note too long");
    return 0;
  }
  return napi_get_value_string_utf8(env, value, out, size, &length) == napi_ok;
}

/* armStopWatchdog(callback, graceMs, syncFds, noteBefore, noteAfter): see the comment above.
 * Once per process; throws on bad arguments or when already armed. */
static napi_value stop_watchdog_arm(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  napi_valuetype type;
  double grace_ms;
  bool is_typedarray;
  napi_typedarray_type array_type;
  size_t count;
  void *data;
  if (!get_args(env, info, 5, argv)) return NULL;
  if (stop.armed) return throw_errno(env, EALREADY, "armStopWatchdog", "");
  NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_function) {
    napi_throw_type_error(env, NULL, "callback must be a function");
    return NULL;
  }
  NAPI_CALL(env, napi_typeof(env, argv[1], &type));
  if (type != napi_number) {
    napi_throw_type_error(env, NULL, "graceMs must be a number");
    return NULL;
  }
  NAPI_CALL(env, napi_get_value_double(env, argv[1], &grace_ms));
  if (!(grace_ms >= 0 && grace_ms <= 3600e3)) {
    napi_throw_range_error(env, "EINVAL", "graceMs must be from 0 to 3600000");
    return NULL;
  }
  NAPI_CALL(env, napi_is_typedarray(env, argv[2], &is_typedarray));
  if (is_typedarray) NAPI_CALL(env, napi_get_typedarray_info(env, argv[2], &array_type, &count, &data, NULL, NULL));
  if (!is_typedarray || array_type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "syncFds must be an Int32Array");
    return NULL;
  }
  if (count > STOP_MAX_SYNC_FDS) {
    napi_throw_range_error(env, "EINVAL", "syncFds holds at most 64 fds");
    return NULL;
  }
  if (!get_note(env, argv[3], stop.note_before, sizeof stop.note_before) || !get_note(env, argv[4], stop.note_after, sizeof stop.note_after))
    return NULL;
  if (count > 0) memcpy(stop.sync_fds, data, count * sizeof(int32_t));
  stop.sync_fd_count = count;
  stop.grace_ns = grace_ms * 1e6;

  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &stop.callback));
  stop.env = env;
  if (sem_init(&stop.wake, 0, 0) < 0) return throw_errno(env, errno, "sem_init", "");
  int rc = uv_async_init(loop, &stop.async, stop_async_fire);
  if (rc < 0) return throw_errno(env, -rc, "uv_async_init", "");
  /* The watcher must not keep the event loop alive: an appliance with nothing left to wait for
   * still ends (the tender's beforeExit). */
  uv_unref((uv_handle_t *)&stop.async);

  /* The thread starts with every signal blocked, so that the kernel never picks it to run the
   * handler: a process-directed signal then interrupts the JS thread's ppoll, as before. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pthread_t thread;
  rc = pthread_create(&thread, NULL, stop_watchdog, NULL);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (rc != 0) return throw_errno(env, rc, "pthread_create", "stop watchdog");
  pthread_detach(thread);

  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = stop_signal_handler;
  /* The three exclude each other, so the handler never nests; SA_RESTART as libuv's own. */
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) sigaddset(&action.sa_mask, stop_signals[i]);
  action.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
    if (sigaction(stop_signals[i], &action, NULL) < 0) return throw_errno(env, errno, "sigaction", "");
  }
  /* Unblock them on this thread in case the parent left them blocked (a mask is inherited). */
  sigset_t ours;
  sigemptyset(&ours);
  for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) sigaddset(&ours, stop_signals[i]);
  pthread_sigmask(SIG_UNBLOCK, &ours, NULL);
  stop.armed = 1;
  return NULL;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"tapOpen", tap_open}, {"ifMtu", if_mtu}, {"read", fd_read},
      {"write", fd_write},   {"poll", fds_poll}, {"close", fd_close},
      {"socketpair", sock_pair}, {"waitWritable", fd_wait_writable},
      {"watch", fd_watch_start}, {"rewatch", fd_watch_change}, {"unwatch", fd_watch_stop},
      {"tapSetOffload", tap_set_offload}, {"readv2", fd_readv2}, {"writev2", fd_writev2},
      {"armStopWatchdog", stop_watchdog_arm},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    NAPI_CALL(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return exports;
}
