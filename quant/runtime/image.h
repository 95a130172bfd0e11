// image.h: an image file or its bytes (PNG, JPEG, BMP, GIF, TGA, PSD, HDR, PIC, PNM: what
// stb_image decodes) -> pixels a model takes: `channels` (1 = grey, 3 = RGB) bytes per pixel, HWC,
// height x width. An image of another size is resized (stb_image_resize's default filter);
// an image of the model's size is used as decoded. Errors name the image: "cannot decode image
// P: <reason>", "cannot open image file P: no such file".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

std::vector<uint8_t> decode_image(const void* bytes, size_t size, int64_t channels, int64_t height, int64_t width,
                                  const std::string& what);
std::vector<uint8_t> load_image_file(const std::string& path, int64_t channels, int64_t height, int64_t width);

}  // namespace lowbit
