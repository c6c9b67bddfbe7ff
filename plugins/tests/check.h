// A minimal test harness: TEST(name) registers a function, CHECK* record failures with the
// location, and main() runs every test and returns non-zero if any check failed.
#pragma once

#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace check {

struct Registry {
  std::vector<std::pair<char const*, std::function<void()>>> tests;
  int failures = 0;
  static Registry& get() {
    static Registry r;
    return r;
  }
};

struct Register {
  Register(char const* name, std::function<void()> fn) {
    Registry::get().tests.emplace_back(name, std::move(fn));
  }
};

inline void fail(char const* file, int line, std::string const& what) {
  ++Registry::get().failures;
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

inline int runAll() {
  Registry& r = Registry::get();
  for (auto& [name, fn] : r.tests) {
    int const before = r.failures;
    try {
      fn();
    } catch (std::exception const& e) {
      fail(name, 0, std::string("uncaught exception: ") + e.what());
    }
    std::printf("[%s] %s\n", r.failures == before ? "  OK  " : "FAILED", name);
  }
  std::printf("%zu tests, %d failed checks\n", r.tests.size(), r.failures);
  return r.failures == 0 ? 0 : 1;
}

}  // namespace check

#define CHECK_CONCAT_(a, b) a##b
#define CHECK_CONCAT(a, b) CHECK_CONCAT_(a, b)
#define TEST(name)                                                      \
  static void name();                                                   \
  static check::Register CHECK_CONCAT(register_, name)(#name, &name);   \
  static void name()

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) check::fail(__FILE__, __LINE__, "CHECK(" #cond ")");     \
  } while (0)

#define CHECK_EQ(a, b)                                                                    \
  do {                                                                                    \
    auto const& va_ = (a);                                                                \
    auto const& vb_ = (b);                                                                \
    if (!(va_ == vb_)) {                                                                  \
      check::fail(__FILE__, __LINE__, "CHECK_EQ(" #a ", " #b "): " + std::to_string(va_) + \
                                          " != " + std::to_string(vb_));                  \
    }                                                                                     \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                                 \
  do {                                                                                     \
    std::string const va_ = (a), vb_ = (b);                                                \
    if (va_ != vb_) check::fail(__FILE__, __LINE__, "'" + va_ + "' != '" + vb_ + "'");     \
  } while (0)

// `expr` must throw ExceptionType whose what() contains every one of the given fragments.
#define CHECK_THROWS(ExceptionType, expr, ...)                                              \
  do {                                                                                      \
    bool thrown_ = false;                                                                   \
    try {                                                                                   \
      (void)(expr);                                                                         \
    } catch (ExceptionType const& e_) {                                                     \
      thrown_ = true;                                                                       \
      std::string const msg_ = e_.what();                                                   \
      for (std::string frag_ : std::vector<std::string>{__VA_ARGS__}) {                     \
        if (msg_.find(frag_) == std::string::npos) {                                        \
          check::fail(__FILE__, __LINE__, "message '" + msg_ + "' lacks '" + frag_ + "'");  \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
    if (!thrown_) check::fail(__FILE__, __LINE__, "no " #ExceptionType " from " #expr);     \
  } while (0)

#define CHECK_MAIN() \
  int main() { return check::runAll(); }
