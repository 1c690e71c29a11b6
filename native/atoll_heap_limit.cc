/*
 * Heap exhaustion under the spt tender: V8 reports it with a multi-line dump and SIGABRT, which
 * reads like a crash. A near-heap-limit callback runs just before that point, while the heap is
 * still consistent; it prints the tender's one-line message and exits with the tender's status.
 *
 * Only write(2) and exit_group(2) are used here, both on the seccomp allowlist.
 */
#include "atoll_heap_limit.h"

#include <string.h>
#include <unistd.h>

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

}  // namespace

extern "C" int atoll_exit_on_heap_limit(const char *message, int status) {
  v8::Isolate *isolate = v8::Isolate::TryGetCurrent();
  if (isolate == nullptr) return 0;
  heap_limit_exit.message = message;
  heap_limit_exit.status = status;
  isolate->AddNearHeapLimitCallback(OnNearHeapLimit, &heap_limit_exit);
  return 1;
}
