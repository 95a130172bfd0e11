// error.h: lowbit's one error type and the LOWBIT_CHECK macro.
// A caller's mistake (bad shape, bad file, bad flag) throws lowbit::Error whose message names the
// offending thing and what was expected. Library code never aborts or exits; the CLI turns an
// Error into one "error: ..." line and a non-zero exit code.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace lowbit

// LOWBIT_CHECK(cond, "message parts", value, ...): throws lowbit::Error when cond is false.
#define LOWBIT_CHECK(cond, ...)                                        \
  do {                                                                 \
    if (!(cond)) throw ::lowbit::Error(::lowbit::detail::concat(__VA_ARGS__)); \
  } while (0)
