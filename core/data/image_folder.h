// image_folder.h: the folder:DIR dataset, one subfolder per class (sorted names = class ids)
// holding PNG/JPEG/BMP files (other files are ignored), decoded with Debian's stb_image.
// Splits: if DIR/train exists, its subfolders are the classes and DIR/test (else DIR/val) is
// the test split; otherwise DIR's subfolders are the classes and, within each class, files are
// sorted by name and every 10th (0-based index i with i % 10 == 9) is held out for test, so the
// split is deterministic and about 1 in 10 per class.
// A folder whose only subfolders are test/ and/or val/ (no train/) is an evaluation set: the
// classes are test/'s (else val/'s) subfolders, it has a Test split only (loading Train throws
// naming the folder), and its geometry and mean/std come from those test images.
// Otherwise geometry comes from the train split: C = 3 if any train image has colour (alpha is dropped),
// else 1; H x W = the first train image's size (first class, first file); other images are
// bilinearly resized to it. mean/std are computed from the decoded train split.
// Decoding: 8-bit (and 16-bit PNGs, reduced to their high byte) gray, gray+alpha, RGB, RGBA. A file
// that does not decode (0 bytes, truncated, text named .jpg, ...) is one error naming it; with
// skip_bad_images it is left out instead and listed in Dataset::skipped (the hold-out split was
// chosen before, from the file names, so skipping shifts no other image between splits).
#pragma once
#include <cstdint>
#include <string>

#include "core/data/dataset.h"

namespace lowbit {

// Bilinear resize of a planar (CHW) uint8 image, half-pixel centres (like OpenCV INTER_LINEAR,
// no antialiasing): src coordinate s = (d + 0.5) * src_size / dst_size - 0.5, clamped to the
// image, result rounded to nearest. Same size = exact copy.
void resize_bilinear(const uint8_t* src, int64_t channels, int64_t src_h, int64_t src_w,
                     uint8_t* dst, int64_t dst_h, int64_t dst_w);

// Loads one split of folder:DIR (name "folder"). Throws naming the file or folder when DIR is
// missing, has no class folders, a class has no training images, an image cannot be decoded,
// or a test/val subfolder names a class the train split lacks (or has no decodable image left).
Dataset read_image_folder(const std::string& dir, Split split, bool skip_bad_images = false);

}  // namespace lowbit
