/*
 * atoll_spt: the Linux calls the `spt` tender needs and Node cannot make (src/tenders/spt/).
 *
 * Two processes use it:
 *  - the launcher (the `atoll run` process) starts the appliance process in fresh mount, PID, IPC
 *    and network namespaces with only the fds it was given (spawnSealed), and waits for it off
 *    the main thread (waitChild), so that it can still forward signals;
 *  - the appliance process prepares itself while it can still open files (prepare), moves into an
 *    empty root (enterEmptyRoot), becomes an unprivileged user (dropPrivileges), and finally
 *    installs the seccomp filter that kills it on any other system call (compileFilter +
 *    installFilter). compileFilter runs libseccomp; installFilter only makes two raw system calls,
 *    so that nothing allocates or opens files between lockdown and the image's first instruction.
 *
 * The user-mode network gateway (src/tenders/user/gateway.ts) is sealed with the same pieces: the
 * tender starts it with spawnGateway (a new mount namespace only: it publishes ports on the host's
 * network), and it calls prepare, enterEmptyRoot, dropPrivileges and compileFilter/installFilter
 * with an allowlist of its own (src/tenders/user/allowlist.ts) once its sockets are open.
 *
 * The allowlist itself is policy and lives in TypeScript (src/tenders/spt/allowlist.ts): this
 * file translates rules, it does not choose them.
 *
 * Setup calls throw Errors with `code` (errno name) and `syscall`, as the atoll_native addon does:
 * the tender turns them into one-line messages. Nothing here is reachable from an image.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef ATOLL_NO_LIBSECCOMP
#include <seccomp.h>
#endif

#include <node_api.h>

#include "atoll_heap_limit.h"

#include "napi_helpers.h"

/* Generous bounds: an appliance has a handful of devices and a short command line. */
#define MAX_CHILD_FDS 64
#define MAX_STRINGS 256
#define MAX_STRING_BYTES 65536
#define MAX_RULES 512
#define MAX_ARG_CHECKS 6


static int get_int(napi_env env, napi_value value, int64_t min, int64_t max, int64_t *out) {
  napi_valuetype type;
  int64_t number;
  double exact;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type != napi_number || napi_get_value_double(env, value, &exact) != napi_ok ||
      napi_get_value_int64(env, value, &number) != napi_ok || (double)number != exact ||
      number < min || number > max) {
    napi_throw_range_error(env, NULL, "expected an integer in range");
    return 0;
  }
  *out = number;
  return 1;
}

static int get_bool(napi_env env, napi_value value, bool *out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a boolean");
    return 0;
  }
  return 1;
}

/* A malloc'd, NUL-terminated copy; refuses embedded NULs, which execve would silently cut at. */
static char *get_string(napi_env env, napi_value value) {
  size_t length, copied;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return NULL;
  }
  if (length > MAX_STRING_BYTES) {
    napi_throw_range_error(env, NULL, "string too long");
    return NULL;
  }
  char *copy = malloc(length + 1);
  if (copy == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, value, copy, length + 1, &copied) != napi_ok ||
      strlen(copy) != length) {
    free(copy);
    napi_throw_type_error(env, NULL, "string must not contain NUL characters");
    return NULL;
  }
  return copy;
}

static void free_strings(char **strings) {
  if (strings == NULL) return;
  for (char **s = strings; *s != NULL; s++) free(*s);
  free(strings);
}

/* A NULL-terminated, malloc'd vector of copies, as execve wants it. */
static char **get_string_array(napi_env env, napi_value value) {
  bool is_array;
  uint32_t count;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, value, &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an array of strings");
    return NULL;
  }
  if (count > MAX_STRINGS) {
    napi_throw_range_error(env, NULL, "too many strings");
    return NULL;
  }
  char **strings = calloc(count + 1, sizeof *strings);
  if (strings == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    if (napi_get_element(env, value, i, &element) != napi_ok ||
        (strings[i] = get_string(env, element)) == NULL) {
      free_strings(strings);
      return NULL;
    }
  }
  return strings;
}

/* ---------------------------------------------------------------------------------------------
 * Launcher side
 * ------------------------------------------------------------------------------------------- */

/* socketPair(): [launcherEnd, applianceEnd], both close-on-exec. */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    return throw_errno(env, errno, "socketpair", "");
  napi_value result;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &result));
  for (uint32_t i = 0; i < 2; i++) NAPI_CALL(env, napi_set_element(env, result, i, make_int(env, pair[i])));
  return result;
}

/*
 * Runs in the new process between clone and execve. The launcher has threads, so only
 * async-signal-safe calls are allowed here: no malloc, no stdio, no locks.
 */
static void exec_child(const char *file, char **argv, char **envp, const int *fds, size_t count,
                       bool isolate, int report_fd) {
  int err;
  /* The appliance must not outlive its launcher, even when the launcher is SIGKILLed. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) goto fail;
  /* A session of its own, so that signals to the launcher's process group (a terminal's Ctrl-C,
   * `kill -TERM -<pgid>`, docker stop, timeout) reach the appliance once, forwarded by the
   * launcher. Received twice, the second could land while Node exits, after libuv has closed the
   * pipe its signal handler reads: a read(-1) that the seccomp filter kills (SIGSYS). */
  if (setsid() < 0) goto fail;
  /* Mounts made later in this namespace (the empty root) must not propagate back to the host. */
  if (isolate && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) goto fail;

  /* Lift every fd (the report pipe too) above the target range first, so that moving one into
   * place cannot clobber another. */
  report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, (int)count + 1);
  if (report_fd < 0) _exit(127);
  int lifted[MAX_CHILD_FDS];
  for (size_t i = 0; i < count; i++) {
    lifted[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, (int)count + 1);
    if (lifted[i] < 0) goto fail;
  }
  for (size_t i = 0; i < count; i++) {
    if (dup2(lifted[i], (int)i) < 0) goto fail; /* dup2 clears close-on-exec on the target */
  }
  /* Nothing else crosses exec: every other fd the launcher had becomes close-on-exec (the report
   * pipe already is, and stays open until then in case execve fails). */
  if (syscall(SYS_close_range, (unsigned)count, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    /* Kernels before 5.11: close them one by one. */
    struct rlimit limit;
    int max = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536 ? (int)limit.rlim_cur : 65536;
    for (int fd = (int)count; fd < max; fd++) {
      if (fd != report_fd) close(fd);
    }
  }

  /* Signal dispositions other than "ignored" reset at exec; the mask and ignored ones do not. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  execve(file, argv, envp);
fail:
  err = errno;
  while (write(report_fd, &err, sizeof err) < 0 && errno == EINTR) {
  }
  _exit(127);
}

/*
 * spawn_in(...): the body of spawnSealed and spawnGateway: starts `file` with fds[i] as its fd i
 * and no other fd; with `isolate`, in the new namespaces `namespaces` (CLONE_NEW* flags, named
 * `namespaces_name` in errors). Returns the pid; throws if the process could not be started.
 */
static napi_value spawn_in(napi_env env, napi_callback_info info, unsigned long namespaces,
                           const char *namespaces_name, const char *what) {
  napi_value argv_js[5];
  if (!get_args(env, info, 5, argv_js)) return NULL;

  bool is_typedarray, isolate;
  napi_typedarray_type type;
  size_t count;
  void *data;
  NAPI_CALL(env, napi_is_typedarray(env, argv_js[3], &is_typedarray));
  if (is_typedarray)
    NAPI_CALL(env, napi_get_typedarray_info(env, argv_js[3], &type, &count, &data, NULL, NULL));
  if (!is_typedarray || type != napi_int32_array || count > MAX_CHILD_FDS) {
    napi_throw_type_error(env, NULL, "fds must be an Int32Array of at most 64 fds");
    return NULL;
  }
  if (!get_bool(env, argv_js[4], &isolate)) return NULL;
  int fds[MAX_CHILD_FDS];
  memcpy(fds, data, count * sizeof(int));

  char *file = get_string(env, argv_js[0]);
  if (file == NULL) return NULL;
  char **child_argv = get_string_array(env, argv_js[1]);
  char **child_env = child_argv == NULL ? NULL : get_string_array(env, argv_js[2]);
  if (child_env == NULL) {
    free(file);
    free_strings(child_argv);
    return NULL;
  }

  /* The child reports a failed exec through this pipe; a successful exec closes it silently. */
  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) {
    int err = errno;
    free(file);
    free_strings(child_argv);
    free_strings(child_env);
    return throw_errno(env, err, "pipe2", "");
  }

  unsigned long flags = SIGCHLD;
  if (isolate) flags |= namespaces;
  /* clone(2) rather than unshare(2): namespaces cannot be entered by one thread of a running
   * Node process, and CLONE_NEWPID only applies to children anyway. Without a new stack the
   * child runs on a copy of ours, like fork. */
  pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0UL);
  if (pid == 0) exec_child(file, child_argv, child_env, fds, count, isolate && (namespaces & CLONE_NEWNS) != 0, report[1]);
  int clone_err = errno;
  close(report[1]);
  free(file);
  free_strings(child_argv);
  free_strings(child_env);
  if (pid < 0) {
    close(report[0]);
    return throw_errno(env, clone_err, isolate ? namespaces_name : "clone", "");
  }

  int child_err = 0;
  ssize_t n;
  do n = read(report[0], &child_err, sizeof child_err);
  while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n > 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return throw_errno(env, child_err, "execve", what);
  }
  return make_int(env, pid);
}

/*
 * spawnSealed(file, argv, env, fds, isolate): the appliance process. With `isolate`, it starts in
 * new mount, PID (as its PID 1), IPC and network namespaces.
 */
static napi_value spawn_sealed(napi_env env, napi_callback_info info) {
  return spawn_in(env, info, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET,
                  "clone(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWNET)", "the appliance process");
}

/*
 * spawnGateway(file, argv, env, fds, isolate): the user-mode network gateway (src/tenders/user/).
 * With `isolate`, it starts in a new mount namespace only, for its empty root: it keeps the
 * host's network namespace, where it publishes ports, and needs no PID or IPC namespace of its
 * own (its seccomp filter allows neither kill nor System V IPC).
 */
static napi_value spawn_gateway(napi_env env, napi_callback_info info) {
  return spawn_in(env, info, CLONE_NEWNS, "clone(CLONE_NEWNS)", "the network gateway process");
}

typedef struct {
  pid_t pid;
  int status;
  int err;
  napi_deferred deferred;
  napi_async_work work;
} wait_request;

static void wait_execute(napi_env env, void *data) {
  (void)env;
  wait_request *request = data;
  int rc;
  do rc = waitpid(request->pid, &request->status, 0);
  while (rc < 0 && errno == EINTR);
  request->err = rc < 0 ? errno : 0;
}

static void wait_complete(napi_env env, napi_status status, void *data) {
  wait_request *request = data;
  napi_value result, code, signal;
  if (status != napi_ok || request->err != 0 ||
      napi_create_object(env, &result) != napi_ok) {
    napi_value error, message;
    napi_create_string_utf8(env, "waitpid failed", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, request->deferred, error);
  } else {
    int exited = WIFEXITED(request->status), signaled = WIFSIGNALED(request->status);
    if (exited) napi_create_int32(env, WEXITSTATUS(request->status), &code);
    else napi_get_null(env, &code);
    if (signaled) napi_create_int32(env, WTERMSIG(request->status), &signal);
    else napi_get_null(env, &signal);
    napi_set_named_property(env, result, "code", code);
    napi_set_named_property(env, result, "signal", signal);
    napi_resolve_deferred(env, request->deferred, result);
  }
  napi_delete_async_work(env, request->work);
  free(request);
}

/* waitChild(pid): a promise of { code, signal } once the child ends. Waits on a libuv worker
 * thread, so the launcher's event loop keeps running (and forwarding signals) meanwhile. */
static napi_value wait_child(napi_env env, napi_callback_info info) {
  napi_value argv[1], promise, name;
  int64_t pid;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], 1, INT_MAX, &pid)) return NULL;
  wait_request *request = calloc(1, sizeof *request);
  if (request == NULL) return throw_errno(env, ENOMEM, "waitChild", "");
  request->pid = (pid_t)pid;
  NAPI_CALL(env, napi_create_promise(env, &request->deferred, &promise));
  NAPI_CALL(env, napi_create_string_utf8(env, "atoll:waitChild", NAPI_AUTO_LENGTH, &name));
  NAPI_CALL(env, napi_create_async_work(env, NULL, name, wait_execute, wait_complete, request, &request->work));
  NAPI_CALL(env, napi_queue_async_work(env, request->work));
  return promise;
}

/* ---------------------------------------------------------------------------------------------
 * Appliance side: preparation
 * ------------------------------------------------------------------------------------------- */

/*
 * glibc reads /proc/sys/vm/overcommit_memory the first time any thread's malloc arena shrinks
 * (check_may_shrink_heap), which after lockdown would be a forbidden open. Growing and shrinking
 * an arena on a throwaway thread makes glibc read and cache it now.
 */
#define WARM_CHUNKS 64
#define WARM_CHUNK_BYTES (64 * 1024) /* below the mmap threshold, so it comes from the arena */

static void *warm_malloc(void *unused) {
  (void)unused;
  void *chunks[WARM_CHUNKS];
  for (int i = 0; i < WARM_CHUNKS; i++) {
    chunks[i] = malloc(WARM_CHUNK_BYTES);
    if (chunks[i] != NULL) memset(chunks[i], 1, WARM_CHUNK_BYTES);
  }
  for (int i = WARM_CHUNKS - 1; i >= 0; i--) free(chunks[i]);
  return NULL;
}

/*
 * prepare(): what must happen while the process may still open files and make threads:
 *  - warm glibc's malloc (above);
 *  - ignore SIGUSR1, which would otherwise start Node's inspector (a thread and a socket);
 *  - no core dumps: a killed appliance must not leave its memory on the host's disk.
 */
static napi_value prepare(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_t thread;
  int err = pthread_create(&thread, NULL, warm_malloc, NULL);
  if (err != 0) return throw_errno(env, err, "pthread_create", "malloc warm-up");
  err = pthread_join(thread, NULL);
  if (err != 0) return throw_errno(env, err, "pthread_join", "malloc warm-up");

  struct sigaction ignore;
  memset(&ignore, 0, sizeof ignore);
  ignore.sa_handler = SIG_IGN;
  if (sigaction(SIGUSR1, &ignore, NULL) < 0) return throw_errno(env, errno, "sigaction", "SIGUSR1");

  struct rlimit no_core = {0, 0};
  if (setrlimit(RLIMIT_CORE, &no_core) < 0) return throw_errno(env, errno, "setrlimit", "RLIMIT_CORE");
  return NULL;
}

/* Directories that exist on any Linux host we run on; the first one becomes the mount point of
 * the new root. It is only covered in this private mount namespace, never on the host. */
static const char *const MOUNT_POINTS[] = {"/tmp", "/mnt", "/run", "/dev", "/proc"};

/*
 * enterEmptyRoot(): replaces this mount namespace's view with one empty, read-only tmpfs, so that
 * the appliance process holds nothing of the host's filesystem (its devices are open fds).
 * Needs CAP_SYS_ADMIN in a mount namespace of its own (spawnSealed with isolate).
 */
static napi_value enter_empty_root(napi_env env, napi_callback_info info) {
  (void)info;
  const char *point = NULL;
  struct stat st;
  for (size_t i = 0; i < sizeof MOUNT_POINTS / sizeof MOUNT_POINTS[0]; i++) {
    if (stat(MOUNT_POINTS[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      point = MOUNT_POINTS[i];
      break;
    }
  }
  if (point == NULL) return throw_errno(env, ENOENT, "stat", "a mount point for the empty root");
  if (mount("atoll-empty", point, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=0555") < 0)
    return throw_errno(env, errno, "mount(tmpfs)", point);
  if (chdir(point) < 0) return throw_errno(env, errno, "chdir", point);
  /* pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the
   * tmpfs (the pivot_root(2) man page documents this idiom). */
  if (syscall(SYS_pivot_root, ".", ".") < 0) return throw_errno(env, errno, "pivot_root", point);
  if (umount2(".", MNT_DETACH) < 0) return throw_errno(env, errno, "umount2", "the old root");
  if (chdir("/") < 0) return throw_errno(env, errno, "chdir", "/");
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return throw_errno(env, errno, "mount(MS_REMOUNT|MS_RDONLY)", "/");
  return NULL;
}

/*
 * dropPrivileges(uid, gid): becomes uid:gid with no supplementary groups and no capabilities.
 * glibc's set*id wrappers apply the change to every thread (Node has several). The bounding set
 * is emptied first, while CAP_SETPCAP is still held; it is per-thread, but it only matters at
 * execve, which the seccomp filter forbids on every thread.
 */
static napi_value drop_privileges(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t uid, gid;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], 1, 65535 * 65536LL, &uid) ||
      !get_int(env, argv[1], 1, 65535 * 65536LL, &gid))
    return NULL;
  for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return throw_errno(env, errno, "prctl(PR_CAPBSET_DROP)", "");
  }
  if (setgroups(0, NULL) < 0) return throw_errno(env, errno, "setgroups", "");
  if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) return throw_errno(env, errno, "setresgid", "");
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) return throw_errno(env, errno, "setresuid", "");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return throw_errno(env, errno, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", "");

  /* Trust, but verify: a uid change from root clears the capability sets unless SECBIT_KEEP_CAPS
   * was set by someone; refuse to continue if any capability survived. */
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
  if (syscall(SYS_capget, &header, caps) < 0) return throw_errno(env, errno, "capget", "");
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
    if (caps[i].effective != 0 || caps[i].permitted != 0 || caps[i].inheritable != 0)
      return throw_errno(env, EPERM, "capget", "capabilities left after dropping privileges");
  }
  /* Changing the uid cleared the parent-death signal set at spawn: arm it again. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return throw_errno(env, errno, "prctl(PR_SET_PDEATHSIG)", "");
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Appliance side: the seccomp filter
 * ------------------------------------------------------------------------------------------- */

#ifndef ATOLL_NO_LIBSECCOMP

static int get_property(napi_env env, napi_value object, const char *name, napi_value *out) {
  if (napi_get_named_property(env, object, name, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "malformed rule");
    return 0;
  }
  return 1;
}

static int get_u64(napi_env env, napi_value value, uint64_t *out) {
  /* Values come as decimal strings so that 64-bit masks survive the trip through JS. */
  char buffer[32];
  size_t length;
  if (napi_get_value_string_utf8(env, value, buffer, sizeof buffer, &length) != napi_ok || length == 0 ||
      buffer[0] < '0' || buffer[0] > '9') {
    /* strtoull would accept "-1" (and wrap it): only plain digits are a value here. */
    napi_throw_type_error(env, NULL, "argument values must be unsigned decimal strings");
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long parsed = strtoull(buffer, &end, 10);
  if (errno != 0 || *end != '\0') {
    napi_throw_range_error(env, NULL, "argument values must be decimal strings");
    return 0;
  }
  *out = parsed;
  return 1;
}

static int get_cmp_op(napi_env env, napi_value value, enum scmp_compare *out) {
  char op[16];
  size_t length;
  if (napi_get_value_string_utf8(env, value, op, sizeof op, &length) != napi_ok) return 0;
  if (strcmp(op, "eq") == 0) *out = SCMP_CMP_EQ;
  else if (strcmp(op, "ne") == 0) *out = SCMP_CMP_NE;
  else if (strcmp(op, "lt") == 0) *out = SCMP_CMP_LT;
  else if (strcmp(op, "le") == 0) *out = SCMP_CMP_LE;
  else if (strcmp(op, "ge") == 0) *out = SCMP_CMP_GE;
  else if (strcmp(op, "gt") == 0) *out = SCMP_CMP_GT;
  else if (strcmp(op, "maskedEq") == 0) *out = SCMP_CMP_MASKED_EQ;
  else {
    napi_throw_range_error(env, NULL, "unknown comparison");
    return 0;
  }
  return 1;
}

/* Adds one rule { syscall: string, checks: [{ arg, op, value, mask? }] }: the call is allowed
 * when every check holds. Several rules for one call are alternatives. */
static int add_rule(napi_env env, scmp_filter_ctx ctx, napi_value rule) {
  napi_value name_js, checks_js;
  char name[64];
  size_t length;
  uint32_t count;
  if (!get_property(env, rule, "syscall", &name_js) || !get_property(env, rule, "checks", &checks_js)) return 0;
  if (napi_get_value_string_utf8(env, name_js, name, sizeof name, &length) != napi_ok ||
      napi_get_array_length(env, checks_js, &count) != napi_ok || count > MAX_ARG_CHECKS) {
    napi_throw_type_error(env, NULL, "malformed rule");
    return 0;
  }
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown system call '%s'", name);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  struct scmp_arg_cmp checks[MAX_ARG_CHECKS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value check, arg_js, op_js, value_js, mask_js;
    int64_t arg;
    uint64_t value, mask = 0;
    enum scmp_compare op;
    bool has_mask;
    if (napi_get_element(env, checks_js, i, &check) != napi_ok || !get_property(env, check, "arg", &arg_js) ||
        !get_int(env, arg_js, 0, 5, &arg) || !get_property(env, check, "op", &op_js) || !get_cmp_op(env, op_js, &op) ||
        !get_property(env, check, "value", &value_js) || !get_u64(env, value_js, &value))
      return 0;
    if (napi_has_named_property(env, check, "mask", &has_mask) != napi_ok) return 0;
    if (has_mask && (!get_property(env, check, "mask", &mask_js) || !get_u64(env, mask_js, &mask))) return 0;
    checks[i].arg = (unsigned int)arg;
    checks[i].op = op;
    /* For SCMP_CMP_MASKED_EQ datum_a is the mask and datum_b the value. */
    checks[i].datum_a = op == SCMP_CMP_MASKED_EQ ? mask : value;
    checks[i].datum_b = op == SCMP_CMP_MASKED_EQ ? value : 0;
  }
  int rc = seccomp_rule_add_exact_array(ctx, SCMP_ACT_ALLOW, nr, count, checks);
  if (rc < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "rule for '%s' rejected by libseccomp", name);
    throw_errno(env, -rc, "seccomp_rule_add", msg);
    return 0;
  }
  return 1;
}

/* Reads everything written to a memfd back into a new Node Buffer. */
static napi_value memfd_to_buffer(napi_env env, int fd) {
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || lseek(fd, 0, SEEK_SET) < 0) return throw_errno(env, errno, "lseek", "memfd");
  void *data;
  napi_value buffer;
  NAPI_CALL(env, napi_create_buffer(env, (size_t)size, &data, &buffer));
  size_t done = 0;
  while (done < (size_t)size) {
    ssize_t n = read(fd, (char *)data + done, (size_t)size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return throw_errno(env, n < 0 ? errno : EIO, "read", "memfd");
    done += (size_t)n;
  }
  return buffer;
}

/*
 * compileFilter(rules, format): builds the allowlist with libseccomp (default action: kill the
 * process; other architectures and x32 calls: kill the process) and returns it as a Buffer:
 * format "bpf" gives the raw sock_filter program for installFilter, "pfc" a readable listing.
 */
static napi_value compile_filter(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool is_array;
  uint32_t count;
  char format[8];
  size_t length;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &count) != napi_ok || count > MAX_RULES ||
      napi_get_value_string_utf8(env, argv[1], format, sizeof format, &length) != napi_ok ||
      (strcmp(format, "bpf") != 0 && strcmp(format, "pfc") != 0)) {
    napi_throw_type_error(env, NULL, "compileFilter(rules: Rule[], format: \"bpf\" | \"pfc\")");
    return NULL;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (ctx == NULL) return throw_errno(env, ENOMEM, "seccomp_init", "");
  napi_value result = NULL;
  int fd = -1;
  if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0) {
    throw_errno(env, EINVAL, "seccomp_attr_set", "SCMP_FLTATR_ACT_BADARCH");
    goto done;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value rule;
    if (napi_get_element(env, argv[0], i, &rule) != napi_ok || !add_rule(env, ctx, rule)) goto done;
  }
  fd = memfd_create("atoll-seccomp", MFD_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "memfd_create", "");
    goto done;
  }
  int rc = strcmp(format, "bpf") == 0 ? seccomp_export_bpf(ctx, fd) : seccomp_export_pfc(ctx, fd);
  if (rc < 0) {
    throw_errno(env, -rc, "seccomp_export", format);
    goto done;
  }
  result = memfd_to_buffer(env, fd);
done:
  if (fd >= 0) close(fd);
  seccomp_release(ctx);
  return result;
}

#else

static napi_value compile_filter(napi_env env, napi_callback_info info) {
  (void)info;
  napi_throw_error(env, "ENOSYS",
                   "atoll: the spt tender was built without libseccomp: install libseccomp-dev and run `npm run build:native`");
  return NULL;
}

#endif

/*
 * installFilter(program): PR_SET_NO_NEW_PRIVS, then the raw seccomp(2) call with
 * SECCOMP_FILTER_FLAG_TSYNC so that every thread of the process is filtered at once. Only two
 * system calls, both allowed to fail loudly: this is the moment of lockdown.
 */
static napi_value install_filter(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool is_typedarray;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (!get_args(env, info, 1, argv)) return NULL;
  NAPI_CALL(env, napi_is_typedarray(env, argv[0], &is_typedarray));
  if (is_typedarray) NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL));
  if (!is_typedarray || type != napi_uint8_array || length == 0 || length % sizeof(struct sock_filter) != 0 ||
      length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    napi_throw_type_error(env, NULL, "program must be a Uint8Array of sock_filter instructions");
    return NULL;
  }
  struct sock_fprog program = {(unsigned short)(length / sizeof(struct sock_filter)), data};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return throw_errno(env, errno, "prctl(PR_SET_NO_NEW_PRIVS)", "");
  long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
  if (rc < 0) return throw_errno(env, errno, "seccomp(SECCOMP_SET_MODE_FILTER)", "");
  /* With TSYNC a positive result names a thread that could not be synchronised. */
  if (rc > 0) return throw_errno(env, EAGAIN, "seccomp(SECCOMP_FILTER_FLAG_TSYNC)", "a thread could not be filtered");
  return NULL;
}

/* exitOnHeapLimit(message, status): see atoll_heap_limit.cc. */
static napi_value exit_on_heap_limit(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t status;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[1], 0, 255, &status)) return NULL;
  char *message = get_string(env, argv[0]);
  if (message == NULL) return NULL;
  /* Kept for the life of the process: the callback may fire at any allocation. */
  if (!atoll_exit_on_heap_limit(message, (int)status)) {
    free(message);
    napi_throw_error(env, NULL, "no V8 isolate on this thread");
  }
  return NULL;
}

/* exitOnEngineFailure(outOfMemory, outOfMemoryStatus, fatal, fatalStatus): see atoll_heap_limit.cc. */
static napi_value exit_on_engine_failure(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t out_of_memory_status, fatal_status;
  if (!get_args(env, info, 4, argv) || !get_int(env, argv[1], 0, 255, &out_of_memory_status) ||
      !get_int(env, argv[3], 0, 255, &fatal_status))
    return NULL;
  char *out_of_memory = get_string(env, argv[0]);
  if (out_of_memory == NULL) return NULL;
  char *fatal = get_string(env, argv[2]);
  if (fatal == NULL) {
    free(out_of_memory);
    return NULL;
  }
  /* Kept for the life of the process: the handlers may run at any moment. */
  int rc = atoll_exit_on_engine_failure(out_of_memory, (int)out_of_memory_status, fatal, (int)fatal_status);
  if (rc == 1) return NULL;
  int err = errno;
  free(out_of_memory);
  free(fatal);
  if (rc == 0) napi_throw_error(env, NULL, "no V8 isolate on this thread");
  else throw_errno(env, err, "sigaction", "SIGABRT");
  return NULL;
}

/*
 * limitData(bytes): RLIMIT_DATA, soft and hard. Since Linux 4.7 it bounds the process's private
 * writable memory (brk and every private writable mapping: V8's heap pages, malloc's arenas and
 * large blocks, ArrayBuffer contents), so an allocation past it fails with ENOMEM instead of the
 * kernel's OOM killer ending the process later. The hard limit too: nothing in the process may
 * raise it again (setrlimit is not on the allowlist anyway).
 */
static napi_value limit_data(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t bytes;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], 1, INT64_MAX / 2, &bytes)) return NULL;
  struct rlimit limit = {(rlim_t)bytes, (rlim_t)bytes};
  if (setrlimit(RLIMIT_DATA, &limit) < 0) return throw_errno(env, errno, "setrlimit", "RLIMIT_DATA");
  return NULL;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"socketPair", socket_pair},
      {"spawnSealed", spawn_sealed},
      {"spawnGateway", spawn_gateway},
      {"waitChild", wait_child},
      {"prepare", prepare},
      {"enterEmptyRoot", enter_empty_root},
      {"dropPrivileges", drop_privileges},
      {"compileFilter", compile_filter},
      {"installFilter", install_filter},
      {"exitOnHeapLimit", exit_on_heap_limit},
      {"exitOnEngineFailure", exit_on_engine_failure},
      {"limitData", limit_data},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    NAPI_CALL(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn));
    NAPI_CALL(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return exports;
}
