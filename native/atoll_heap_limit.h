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

/*
 * From now on, the engine giving up ends the process with one line on stderr instead of Node's
 * multi-line report, native backtrace and abort() (whose SIGABRT a PID 1 ignores; it ended as
 * SIGSYS, see docs/spt.md):
 *  - V8 out of memory (its OOM handler): `out_of_memory` + " [V8: <location>: <detail>]", then
 *    `out_of_memory_status`; likewise a failed C++ operator new (std::set_new_handler), which
 *    would otherwise throw std::bad_alloc into code built without exceptions and terminate;
 *  - a V8 API fatal error (its fatal error handler): `fatal` + " [V8: <location>: <message>]", then
 *    `fatal_status`;
 *  - SIGABRT from anywhere (V8's CHECK failures and Node's own assertions end in abort()):
 *    `fatal` + " (SIGABRT)", then `fatal_status`.
 * Both strings are kept, not copied. Returns 0 when the calling thread has no isolate, -1 (errno
 * set) when the SIGABRT handler could not be installed.
 */
int atoll_exit_on_engine_failure(const char *out_of_memory, int out_of_memory_status, const char *fatal, int fatal_status);

#ifdef __cplusplus
}
#endif

#endif
