// A minimal test harness: TEST_CASE registers a function, CHECK and CHECK_EQ record failures
// (with file, line and, for CHECK_EQ, both values) and let the test case go on.
#pragma once

#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace spx_test {

struct TestCase {
  std::string name;
  std::function<void()> run;
};

inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> cases;
  return cases;
}

struct Registrar {
  Registrar(const char* name, std::function<void()> run) { registry().push_back({name, std::move(run)}); }
};

// Failures of the test case that is running.
inline int& failures() {
  static int count = 0;
  return count;
}

inline void report_failure(const char* file, int line, const std::string& what) {
  if (++failures() <= 20) std::cerr << file << ":" << line << ": FAILED " << what << "\n";
}

template <typename A, typename B>
void check_equal(const A& a, const B& b, const char* a_text, const char* b_text, const char* file, int line) {
  if (a == b) return;
  std::ostringstream s;
  s << a_text << " == " << b_text << " (" << a << " vs " << b << ")";
  report_failure(file, line, s.str());
}

}  // namespace spx_test

#define SPX_CONCAT_(a, b) a##b
#define SPX_CONCAT(a, b) SPX_CONCAT_(a, b)
#define TEST_CASE(name)                                                           \
  static void SPX_CONCAT(test_, name)();                                          \
  static const spx_test::Registrar SPX_CONCAT(registrar_, name)(#name, SPX_CONCAT(test_, name)); \
  static void SPX_CONCAT(test_, name)()

// Variadic so that a braced list with commas needs no extra parentheses.
#define CHECK(...) ((__VA_ARGS__) ? void() : spx_test::report_failure(__FILE__, __LINE__, #__VA_ARGS__))
#define CHECK_EQ(a, b) spx_test::check_equal((a), (b), #a, #b, __FILE__, __LINE__)
// CHECK with a message built by streaming (for failures inside loops).
#define CHECK_MSG(cond, message)                                         \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::ostringstream spx_message_;                                   \
      spx_message_ << #cond << ": " << message;                          \
      spx_test::report_failure(__FILE__, __LINE__, spx_message_.str());  \
    }                                                                    \
  } while (0)
