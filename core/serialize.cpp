// serialize.cpp: safetensors-format StateDict files with validation and atomic writes.
#include "core/serialize.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace lowbit {

using json = nlohmann::json;

void save_state_dict(const std::string& path, const StateDict& state) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : state.tensors) {
    LOWBIT_CHECK(name != "__metadata__", "a tensor may not be named __metadata__");
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.data()), sizeof(float) * t.numel());
    header[name] = {{"dtype", "F32"}, {"shape", t.shape()}, {"data_offsets", {begin, data.size()}}};
  }
  json scalars = json::object(), strings = json::object();
  // As text with 17 significant digits: exact for doubles, and inf/nan survive (JSON has no such numbers).
  for (const auto& [k, v] : state.scalars) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    scalars[k] = buf;
  }
  for (const auto& [k, v] : state.strings) strings[k] = v;
  const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size()));
  header["__metadata__"] = {{"format", "lowbit-checkpoint"},
                            {"scalars", scalars.dump()},
                            {"strings", strings.dump()},
                            {"crc32", std::to_string(crc)}};
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  std::string bytes(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  bytes += h;
  bytes += data;
  write_file_atomically(path, bytes);
}

StateDict load_state_dict_file(const std::string& path) {
  require_regular_file(path, "checkpoint");
  std::ifstream in(path, std::ios::binary);
  LOWBIT_CHECK(in.good(), "cannot open checkpoint ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  auto fail = [&](const std::string& why) { return Error("bad checkpoint " + path + ": " + why); };
  if (bytes.size() < 8) throw fail("file is " + std::to_string(bytes.size()) + " bytes, too short for a header");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8) throw fail("header length " + std::to_string(n) + " exceeds the file size");
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const json::exception& e) {
    throw fail(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  const size_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  StateDict sd;
  try {
    const json& meta = header.at("__metadata__");
    if (meta.value("format", "") != "lowbit-checkpoint") throw fail("not a lowbit checkpoint (format field)");
    const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(data_size));
    if (meta.at("crc32").get<std::string>() != std::to_string(crc)) throw fail("checksum mismatch: file is corrupt");
    const json scalars = json::parse(meta.at("scalars").get<std::string>());
    const json strings = json::parse(meta.at("strings").get<std::string>());
    for (auto& [k, v] : scalars.items()) {
      const std::string text = v.get<std::string>();
      char* end = nullptr;
      sd.scalars[k] = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end) throw fail("scalar '" + k + "' is not a number: " + text);
    }
    for (auto& [k, v] : strings.items())
      sd.strings[k] = v.get<std::string>();
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      if (info.at("dtype") != "F32") throw fail("tensor '" + name + "' has dtype " + info.at("dtype").dump() + ", expected F32");
      Shape shape = info.at("shape").get<Shape>();
      uint64_t count = 1;
      for (int64_t d : shape) {
        if (d < 0 || d > (int64_t{1} << 40)) throw fail("tensor '" + name + "' has an invalid shape");
        count *= static_cast<uint64_t>(d);
        if (count > data_size) throw fail("tensor '" + name + "' is larger than the file");
      }
      const auto off = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size || off[1] - off[0] != count * sizeof(float))
        throw fail("tensor '" + name + "' has data offsets outside the file or not matching its shape");
      ranges.emplace_back(off[0], off[1]);
      Tensor t = Tensor::empty(shape);
      std::memcpy(t.data(), data + off[0], off[1] - off[0]);
      sd.tensors[name] = t;
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second) throw fail("tensors overlap in the data section");
  } catch (const json::exception& e) {
    throw fail(std::string("malformed header (") + e.what() + ")");
  }
  return sd;
}

}  // namespace lowbit
