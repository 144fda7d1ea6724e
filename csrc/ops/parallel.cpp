#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>

#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace spx {
namespace {
std::atomic<bool> g_in_forked_child{false};
// set_num_threads() value shared by all Python threads (OpenMP's own setting is per thread);
// 0 means "ask OpenMP", which honours OMP_NUM_THREADS and threadpoolctl.
std::atomic<int> g_default_threads{0};
#if !defined(_WIN32)
void mark_forked_child() { g_in_forked_child.store(true); }
#endif
}  // namespace

void install_fork_handler() {
#if !defined(_WIN32)
  static const int installed = pthread_atfork(nullptr, nullptr, mark_forked_child);
  (void)installed;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int openmp_version() {
#ifdef _OPENMP
  return _OPENMP;
#else
  return 0;
#endif
}

int default_threads() {
  if (g_in_forked_child.load()) return 1;
  const int chosen = g_default_threads.load();
  if (chosen > 0) return chosen;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_default_threads(int n) { g_default_threads.store(n); }

int resolve_threads(int requested) {
  if (g_in_forked_child.load()) return 1;
  const int wanted = requested > 0 ? requested : default_threads();
  // Results do not depend on the thread count, so an absurd request (which would make the
  // OpenMP runtime fail to create threads) is capped instead of refused.
  static const int cap = [] {  // hardware_concurrency() reads /sys: once per process
    const unsigned hardware = std::thread::hardware_concurrency();
    return static_cast<int>(std::max(8u, 4u * (hardware ? hardware : 1u)));
  }();
  return std::max(1, std::min(wanted, cap));
}

}  // namespace spx
