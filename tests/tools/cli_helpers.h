// cli_helpers.h: what the tests of the `lowbit` program share: a scratch folder per test,
// reading a file, running the program (exit status, stdout, stderr) and the JSON summary that
// --json prints as the last stdout line.
#pragma once
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/temp_dir.h"

namespace lowbit::testing {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Exit status of a shell command, its output discarded.
inline int run(const std::string& cmd) {
  const int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct CliResult {
  int status = -1;
  std::string out, err;  // stdout, stderr
};

// Runs `lowbit ARGS` ($LOWBIT_EXE); its stdout and stderr go through files in `dir`.
inline CliResult run_lowbit(const fs::path& dir, const std::string& args) {
  const char* exe = std::getenv("LOWBIT_EXE");
  REQUIRE(exe != nullptr);
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const int status =
      std::system((std::string(exe) + " " + args + " >" + out.string() + " 2>" + err.string()).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
}

// The last line of `out`, parsed as JSON (a null value when it is not JSON).
inline nlohmann::json last_json_line(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const auto nl = s.rfind('\n');
  return nlohmann::json::parse(nl == std::string::npos ? s : s.substr(nl + 1), nullptr, false);
}

}  // namespace lowbit::testing
