// image.cpp: decoding and resizing with Debian's libstb (image.h); it holds the stb_image and
// stb_image_resize implementations, so no STB_*_IMPLEMENTATION here.
#include "quant/runtime/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <climits>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"

namespace lowbit {

namespace {
const char* stb_reason() { return stbi_failure_reason() ? stbi_failure_reason() : "unknown format"; }
}  // namespace

std::vector<uint8_t> decode_image(const void* bytes, size_t size, int64_t channels, int64_t height, int64_t width,
                                  const std::string& what) {
  LOWBIT_CHECK(channels == 1 || channels == 3, "model input has ", channels, " channels; images need 1 or 3");
  LOWBIT_CHECK(height > 0 && width > 0 && height <= (1 << 14) && width <= (1 << 14), "image size ", height, "x",
               width, " is outside 1..16384");
  LOWBIT_CHECK(size > 0 && size <= static_cast<size_t>(INT_MAX), "cannot decode image ", what, ": ", size,
               " bytes (need 1 to ", INT_MAX, ")");
  const auto* p = static_cast<const stbi_uc*>(bytes);
  const int n = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  // The size from the header first: a hostile header must not make stb allocate gigabytes.
  LOWBIT_CHECK(stbi_info_from_memory(p, n, &w, &h, &comp), "cannot decode image ", what, ": ", stb_reason());
  LOWBIT_CHECK(w > 0 && h > 0 && static_cast<int64_t>(w) * h <= (int64_t{1} << 26), "image ", what, " is ", w, "x",
               h, ", above the 2^26-pixel limit");
  stbi_uc* px = stbi_load_from_memory(p, n, &w, &h, &comp, static_cast<int>(channels));
  LOWBIT_CHECK(px, "cannot decode image ", what, ": ", stb_reason());
  std::unique_ptr<stbi_uc, void (*)(void*)> guard(px, stbi_image_free);
  std::vector<uint8_t> out(static_cast<size_t>(channels * height * width));
  if (w == width && h == height) {
    std::memcpy(out.data(), px, out.size());
  } else {
    LOWBIT_CHECK(stbir_resize_uint8(px, w, h, 0, out.data(), static_cast<int>(width), static_cast<int>(height), 0,
                                    static_cast<int>(channels)),
                 "cannot resize image ", what, " from ", w, "x", h, " to ", width, "x", height);
  }
  return out;
}

std::vector<uint8_t> load_image_file(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  const std::string bytes = read_whole_file(path, "image file");
  return decode_image(bytes.data(), bytes.size(), channels, height, width, path);
}

}  // namespace lowbit
