/* The one V8 C++ API call the spt tender needs: N-API has no hook for the heap limit. */
#ifndef ATOLL_HEAP_LIMIT_H
#define ATOLL_HEAP_LIMIT_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * From now on, when the current isolate's heap is about to exceed its limit (--max-old-space-size),
 * write `message` (kept, not copied) to stderr and end the process with `status`, instead of
 * letting V8 print its multi-line fatal report and abort. Returns 0 when the calling thread has
 * no isolate.
 */
int atoll_exit_on_heap_limit(const char *message, int status);

#ifdef __cplusplus
}
#endif

#endif
