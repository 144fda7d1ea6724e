#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#if !defined(_WIN32)
#include <pthread.h>
#include <unistd.h>
#endif
#if defined(__linux__) && defined(_OPENMP)
#include <dlfcn.h>
#include <link.h>
#include <sys/syscall.h>
#endif

namespace spx {
namespace {
std::atomic<bool> g_in_forked_child{false};
std::atomic<long> g_loaded_in_pid{0};
std::atomic<bool> g_openmp_loaded_before_us{false};
const std::atomic<bool> g_never_stop{false};
thread_local const std::atomic<bool>* t_stop_flag = &g_never_stop;
// set_num_threads() value shared by all Python threads (OpenMP's own setting is per thread);
// 0 means "ask OpenMP", which honours OMP_NUM_THREADS and threadpoolctl.
std::atomic<int> g_default_threads{0};
#if !defined(_WIN32)
void mark_forked_child() { g_in_forked_child.store(true); }
#endif

bool in_forked_child() {
#if !defined(_WIN32)
  if (g_loaded_in_pid.load() != 0 && g_loaded_in_pid.load() != static_cast<long>(getpid())) return true;
#endif
  return g_in_forked_child.load();
}

#if defined(__linux__) && defined(_OPENMP)
// Whether libgomp comes before this module in the dynamic linker's list, which is in load order.
bool libgomp_loaded_before_this_module() {
  Dl_info self;
  if (!dladdr(reinterpret_cast<void*>(&install_fork_handler), &self) || !self.dli_fname) return false;
  struct Search {
    const char* self;
    bool found_self, gomp_first;
  } search{self.dli_fname, false, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        Search& s = *static_cast<Search*>(data);
        const char* name = info->dlpi_name ? info->dlpi_name : "";
        if (std::strcmp(name, s.self) == 0) s.found_self = true;
        else if (!s.found_self && std::strstr(name, "libgomp")) s.gomp_first = true;
        return s.found_self ? 1 : 0;
      },
      &search);
  return search.found_self && search.gomp_first;
}
#endif

// A thread waiting for regions to run (see needs_helper_thread).
struct HelperThread {
  std::mutex call;  // one region at a time
  std::mutex mutex;
  std::condition_variable changed;
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;

  void loop() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      changed.wait(lock, [this] { return fn != nullptr; });
      fn(arg);
      fn = nullptr;
      changed.notify_all();
    }
  }
};

HelperThread* start_helper_thread() {
  try {
    auto* helper = new HelperThread;  // lives as long as the process, like its thread
    std::thread(&HelperThread::loop, helper).detach();
    return helper;
  } catch (...) {
    return nullptr;
  }
}
}  // namespace

void install_fork_handler() {
#if !defined(_WIN32)
  static const int installed = pthread_atfork(nullptr, nullptr, mark_forked_child);
  (void)installed;
  g_loaded_in_pid.store(static_cast<long>(getpid()));
#endif
#if defined(__linux__) && defined(_OPENMP)
  g_openmp_loaded_before_us.store(libgomp_loaded_before_this_module());
#endif
}

bool needs_helper_thread() {
#if defined(__linux__) && defined(_OPENMP)
  // Only the thread that called fork() survives in the child, as its main thread (tid == pid).
  return g_openmp_loaded_before_us.load() && syscall(SYS_gettid) == getpid();
#else
  return false;
#endif
}

bool run_on_helper_thread(void (*fn)(void*), void* arg) {
  static HelperThread* const helper = start_helper_thread();
  if (!helper) return false;
  std::lock_guard<std::mutex> one(helper->call);
  std::unique_lock<std::mutex> lock(helper->mutex);
  helper->fn = fn, helper->arg = arg;
  helper->changed.notify_all();
  helper->changed.wait(lock, [helper] { return helper->fn == nullptr; });
  return true;
}

const std::atomic<bool>& stop_flag() { return *t_stop_flag; }
void set_stop_flag(const std::atomic<bool>* flag) { t_stop_flag = flag ? flag : &g_never_stop; }

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
  if (in_forked_child()) return 1;
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
  if (in_forked_child()) return 1;
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
