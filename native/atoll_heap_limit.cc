/*
 * The engine giving up, under the spt tender. V8 reports heap exhaustion and fatal errors through
 * Node's handlers: a multi-line dump, a native backtrace and abort(), whose SIGABRT a PID 1
 * ignores; glibc then falls through to hlt, and Node's SIGSEGV handler re-raised that with a
 * tgkill the seccomp filter refused, so it read as SIGSYS: an escape attempt. Here:
 *  - a near-heap-limit callback runs just before the heap limit (--memory) is reached, while the
 *    heap is still consistent, and prints the tender's one-line message;
 *  - V8's OOM and fatal error handlers, a C++ new handler and a SIGABRT handler print one line
 *    saying what happened.
 * Each then exits with the tender's status.
 *
 * Only write(2), rt_sigaction(2) (at setup) and exit_group(2) are used here, all on the seccomp
 * allowlist.
 */
#include "atoll_heap_limit.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <new>

#include <v8.h>

namespace {

struct HeapLimitExit {
  const char *message;
  int status;
};

HeapLimitExit heap_limit_exit;

size_t OnNearHeapLimit(void *data, size_t current_heap_limit, size_t initial_heap_limit) {
  (void)current_heap_limit;
  (void)initial_heap_limit;
  const HeapLimitExit *exit = static_cast<const HeapLimitExit *>(data);
  size_t length = strlen(exit->message);
  size_t done = 0;
  while (done < length) {
    ssize_t n = write(2, exit->message + done, length - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  _exit(exit->status);
}

/*
 * The engine's last words, assembled in a static buffer (no allocation: the heap may be what
 * failed, and a signal handler may not allocate) and written with one write(2) where it fits, so
 * that the line is not interleaved with anything.
 */
struct EngineFailureExit {
  const char *out_of_memory;
  int out_of_memory_status;
  const char *fatal;
  int fatal_status;
};

EngineFailureExit engine_failure_exit;

constexpr size_t kLineBytes = 1024;
char failure_line[kLineBytes];

size_t Append(size_t used, const char *text) {
  if (text == nullptr) return used;
  // One byte is kept for the newline.
  while (*text != '\0' && used < kLineBytes - 1) {
    // V8's texts are constants, but a line must stay one line.
    failure_line[used++] = (*text == '\n' || *text == '\r') ? ' ' : *text;
    text++;
  }
  return used;
}

[[noreturn]] void WriteLineAndExit(size_t used, int status) {
  failure_line[used++] = '\n';
  size_t done = 0;
  while (done < used) {
    ssize_t n = write(2, failure_line + done, used - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  _exit(status);
}

/* `prefix` [<source>: <location>: <detail>], e.g. "... ran out of memory [V8: Committing semi space failed.]". */
[[noreturn]] void ExitWithReason(const char *prefix, const char *source, const char *location, const char *detail, int status) {
  size_t used = Append(0, prefix);
  used = Append(used, " [");
  used = Append(used, source);
  used = Append(used, ": ");
  used = Append(used, location);
  if (detail != nullptr && *detail != '\0') {
    used = Append(used, ": ");
    used = Append(used, detail);
  }
  used = Append(used, "]");
  WriteLineAndExit(used, status);
}

/*
 * C stdio's stderr, held back: V8 prints its out-of-memory preamble ("<--- Last few GCs --->", a
 * JS stack trace) with fprintf(stderr) before it calls the OOM handler, and a CHECK failure prints
 * "# Fatal error in ..." before abort(). Nothing else in the appliance process writes to C's stderr
 * (Node's and the tender's messages go to fd 2 directly); a normal exit() flushes it.
 */
char held_stderr[16 * 1024];

/* What V8 printed to stderr since the last flush: glibc's FILE keeps it between these two fields. */
void WriteHeldStderr() {
  const char *pending = stderr->_IO_write_base;
  while (pending != nullptr && pending < stderr->_IO_write_ptr) {
    ssize_t n = write(2, pending, static_cast<size_t>(stderr->_IO_write_ptr - pending));
    if (n <= 0) break;
    pending += n;
  }
}

void OnOutOfMemory(const char *location, const v8::OOMDetails &details) {
  // The preamble is V8's heap statistics for a debugging human: the line says what happened.
  ExitWithReason(engine_failure_exit.out_of_memory, "V8", location, details.detail, engine_failure_exit.out_of_memory_status);
}

/*
 * C++ allocation failing (operator new in V8's or Node's own code, e.g. a GC work list) under
 * --memory's RLIMIT_DATA: without a handler it throws std::bad_alloc, which nothing catches (V8 and
 * Node are built without exceptions), so std::terminate prints two lines and aborts. It is running
 * out of memory, and says so. Node links the same libstdc++ as this addon, so the handler is the
 * process's.
 */
void OnNewFailure() {
  ExitWithReason(engine_failure_exit.out_of_memory, "C++", "operator new", nullptr, engine_failure_exit.out_of_memory_status);
}

void OnFatalError(const char *location, const char *message) {
  WriteHeldStderr();
  ExitWithReason(engine_failure_exit.fatal, "V8", location, message, engine_failure_exit.fatal_status);
}

void OnAbortSignal(int signal) {
  (void)signal;
  // V8's "# Fatal error in <file>, line <n>" and the check that failed: worth keeping.
  WriteHeldStderr();
  WriteLineAndExit(Append(Append(0, engine_failure_exit.fatal), " (SIGABRT)"), engine_failure_exit.fatal_status);
}

}  // namespace

extern "C" int atoll_exit_on_engine_failure(const char *out_of_memory, int out_of_memory_status, const char *fatal, int fatal_status) {
  v8::Isolate *isolate = v8::Isolate::TryGetCurrent();
  if (isolate == nullptr) return 0;
  engine_failure_exit.out_of_memory = out_of_memory;
  engine_failure_exit.out_of_memory_status = out_of_memory_status;
  engine_failure_exit.fatal = fatal;
  engine_failure_exit.fatal_status = fatal_status;
  // These replace Node's handlers (node::OnFatalError, node::OOMErrorHandler), which print a
  // report, dump a native backtrace and abort().
  if (setvbuf(stderr, held_stderr, _IOFBF, sizeof held_stderr) != 0) return -1;
  isolate->SetOOMErrorHandler(OnOutOfMemory);
  std::set_new_handler(OnNewFailure);
  isolate->SetFatalErrorHandler(OnFatalError);
  // As PID 1 of its namespace the process ignores a SIGABRT it sends itself while the disposition
  // is SIG_DFL, so glibc's abort() would fall through to its last resorts; with a handler, the
  // signal is delivered. SA_RESETHAND is not used: a second abort() must land here too.
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = OnAbortSignal;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGABRT, &action, nullptr) < 0) return -1;
  return 1;
}

extern "C" int atoll_exit_on_heap_limit(const char *message, int status) {
  v8::Isolate *isolate = v8::Isolate::TryGetCurrent();
  if (isolate == nullptr) return 0;
  heap_limit_exit.message = message;
  heap_limit_exit.status = status;
  isolate->AddNearHeapLimitCallback(OnNearHeapLimit, &heap_limit_exit);
  return 1;
}
