// Threading: one OpenMP parallel region per call, static deterministic work split.
#pragma once

#include <atomic>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace spx {

// Threads for a call: `requested` > 0 wins, otherwise the default; capped at 4x the hardware
// threads (at least 8). A child process created by fork() after the module was loaded (seen by
// an atfork handler or by a changed process id) runs single-threaded: GNU OpenMP's thread pool
// does not survive fork.
int resolve_threads(int requested);
void install_fork_handler();
bool openmp_enabled();
int openmp_version();  // _OPENMP date macro, 0 without OpenMP
int default_threads();
void set_default_threads(int n);

// A fork *before* the module was loaded cannot be seen: when GNU OpenMP was loaded before this
// module (by another library, e.g. PyTorch, which may have used it and then forked), the
// process's main thread may hold a thread pool whose threads only existed in the parent.
// Parallel regions asked for on that thread then run on a helper thread this process created,
// whose OpenMP state is its own.
bool needs_helper_thread();
// Runs fn(arg) on the helper thread and waits; false (nothing run) if it cannot be started.
bool run_on_helper_thread(void (*fn)(void*), void* arg);

// Interrupting a long call: the code that starts it (the bindings, on a Ctrl-C) points the
// calling thread's stop flag at a flag of its own; the engine's tasks poll it between output
// rows and stop early (the output is then unspecified). By default a constant false.
const std::atomic<bool>& stop_flag();
void set_stop_flag(const std::atomic<bool>* flag);  // nullptr: the default

// [begin, end) of `total` items for thread `tid` of `count`: contiguous, deterministic.
inline void split_range(int64_t total, int tid, int count, int64_t* begin, int64_t* end) {
  *begin = total * tid / count;
  *end = total * (tid + 1) / count;
}

// Runs body(tid, count) on `threads` threads inside a single parallel region. Nothing in
// `body` may throw: all validation and allocation happens before the region.
template <class Body>
void parallel_region(int threads, Body&& body) {
#ifdef _OPENMP
  if (threads > 1) {
    auto region = [&] {
#pragma omp parallel num_threads(threads)
      body(omp_get_thread_num(), omp_get_num_threads());
    };
    if (!needs_helper_thread()) return region();
    using Region = decltype(region);
    if (run_on_helper_thread([](void* r) { (*static_cast<Region*>(r))(); }, &region)) return;
  }
#endif
  body(0, 1);
}

// Synchronizes the threads of the enclosing parallel_region (no-op when serial).
inline void region_barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

}  // namespace spx
