// file_io.cpp: whole-file reads and atomic writes with one clear error each (file_io.h).
#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace lowbit {

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LOWBIT_CHECK(fd >= 0, "cannot write ", path, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(detail::concat("cannot write ", path, ": ", std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot write ", path, ": ", std::strerror(err)));
  }
}

void require_regular_file(const std::string& path, const std::string& expected) {
  const bool vowel = !expected.empty() && std::string("aeiou").find(expected[0]) != std::string::npos;
  const char* article = vowel ? "an " : "a ";
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) throw Error(detail::concat("cannot open ", expected, " ", path, ": no such file"));
  if (std::filesystem::is_directory(st)) throw Error(detail::concat(path, " is a directory, expected ", article, expected));
  if (!std::filesystem::is_regular_file(st))
    throw Error(detail::concat(path, " is not a regular file, expected ", article, expected));
}

std::string read_whole_file(const std::string& path, const std::string& expected) {
  require_regular_file(path, expected);
  std::ifstream f(path, std::ios::binary);
  LOWBIT_CHECK(f.good(), "cannot open ", expected, " ", path);
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  LOWBIT_CHECK(size >= 0, "cannot read ", expected, " ", path);
  f.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  f.read(bytes.data(), size);
  LOWBIT_CHECK(f.gcount() == size, "cannot read ", expected, " ", path, " (short read)");
  return bytes;
}

}  // namespace lowbit
