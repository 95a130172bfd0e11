// temp_dir.h: a fresh, empty scratch folder per test and process, shared by the test suites.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lowbit::testing {

// <system temp>/lowbit_test_NAME_PID, emptied and created.
inline std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("lowbit_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace lowbit::testing
