// Ctrl-C during a long native call: while it runs (GIL released) a SIGINT handler chained in
// front of Python's sets the engine's stop flag (tasks poll it between output rows), then the
// call raises KeyboardInterrupt through Python's own handler. Only on the main thread (where
// Python raises KeyboardInterrupt) and only while SIGINT's Python handler is the default one,
// which raises: a handler that does not would leave a call stopped early without an error.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <csignal>

#include "../ops/parallel.h"

namespace spx_bind {

#if defined(__unix__) || defined(__APPLE__)
class InterruptibleCall {
 public:
  // `long_call`: worth the two sigaction calls (short calls are not interrupted).
  explicit InterruptibleCall(bool long_call) {
    if (!long_call || !python_raises_on_sigint()) return;
    struct sigaction ours {};
    ours.sa_sigaction = &on_sigint;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    stop().store(false);
    if (sigaction(SIGINT, &ours, &previous()) != 0) return;
    active_ = true;
    spx::set_stop_flag(&stop());
  }
  ~InterruptibleCall() { finish(); }
  InterruptibleCall(const InterruptibleCall&) = delete;
  InterruptibleCall& operator=(const InterruptibleCall&) = delete;

  // With the GIL held, after the native call: KeyboardInterrupt if it was interrupted.
  void raise_if_interrupted() {
    const bool interrupted = active_ && stop().load();
    finish();
    if (interrupted && PyErr_CheckSignals() != 0) throw pybind11::error_already_set();
  }

 private:
  static std::atomic<bool>& stop() {
    static std::atomic<bool> flag{false};
    return flag;
  }
  static struct sigaction& previous() {
    static struct sigaction handler {};
    return handler;
  }
  // Async-signal-safe: a lock-free store, then Python's C handler (itself a signal handler).
  static void on_sigint(int sig, siginfo_t* info, void* context) {
    stop().store(true);
    const struct sigaction& p = previous();
    if (p.sa_flags & SA_SIGINFO) {
      if (p.sa_sigaction) p.sa_sigaction(sig, info, context);
    } else if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN && p.sa_handler) {
      p.sa_handler(sig);
    }
  }
  static bool python_raises_on_sigint() {
    namespace py = pybind11;
    py::module_ threading = py::module_::import("threading"), signal = py::module_::import("signal");
    if (!threading.attr("current_thread")().is(threading.attr("main_thread")())) return false;
    return signal.attr("getsignal")(signal.attr("SIGINT")).is(signal.attr("default_int_handler"));
  }
  void finish() {
    if (!active_) return;
    active_ = false;
    spx::set_stop_flag(nullptr);
    sigaction(SIGINT, &previous(), nullptr);
  }

  bool active_ = false;
};
#else
class InterruptibleCall {  // no POSIX signals: calls run to completion
 public:
  explicit InterruptibleCall(bool) {}
  void raise_if_interrupted() {}
};
#endif

}  // namespace spx_bind
