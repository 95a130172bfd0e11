/* lowbit_runtime.h: the C API of liblowbit-runtime: load an exported low-bit model (.lbm) and
 * classify images. Plain C (C99), no C++ types; link with `pkg-config --libs lowbit-runtime`.
 *
 * Contract:
 *  - Every function returns a lowbit_status; LOWBIT_OK (0) on success. On failure nothing is
 *    written to outputs except where stated, and lowbit_last_error() returns one line naming the
 *    input and what was expected (e.g. "m.lbm: graph.ops[3] ('conv2') ..."). The message is
 *    per thread and valid until that thread's next lowbit_* call.
 *  - lowbit_model is opaque and immutable once loaded. Every function taking a const model may be
 *    called from several threads at once; concurrent runs give results bit-identical to serial
 *    ones. The thread count and kernel level are the model's own (lowbit_options); nothing is
 *    process-wide state.
 *  - Float entry: images [n][C][H][W], normalized as in training: (pixel/255 - mean[c]) / std[c].
 *    A NaN or infinite value is LOWBIT_INVALID_ARGUMENT.
 *  - uint8 entry: pixels 0..255, HWC or CHW, normalized with the file's mean/std by exactly that
 *    expression: the logits equal the float entry's on the normalized input, bit for bit.
 *  - Probabilities: softmax in double, p_k = exp(l_k - max l) / sum_j exp(l_j - max l).
 *    Top-k: best first, equal logits in class order.
 */
#ifndef LOWBIT_RUNTIME_H
#define LOWBIT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOWBIT_RUNTIME_VERSION_MAJOR 0
#define LOWBIT_RUNTIME_VERSION_MINOR 1

typedef enum lowbit_status {
  LOWBIT_OK = 0,
  LOWBIT_INVALID_ARGUMENT = 1, /* a null pointer, a bad size, a non-finite input, a bad option */
  LOWBIT_INVALID_MODEL = 2,    /* the model file or bytes failed validation */
  LOWBIT_IO_ERROR = 3,         /* a file could not be read, an image not decoded */
  LOWBIT_INTERNAL_ERROR = 4    /* out of memory or a bug: please report */
} lowbit_status;

typedef struct lowbit_model lowbit_model;

typedef struct lowbit_options {
  int threads;     /* threads of this model's runs; 0: all cores */
  const char* isa; /* "scalar", "avx2", "avx_vnni", "avx512", "amx"; NULL or "": LOWBIT_ISA, else the best */
} lowbit_options;

typedef enum lowbit_layout { LOWBIT_HWC = 0, LOWBIT_CHW = 1 } lowbit_layout;

typedef struct lowbit_class_score {
  int64_t index;
  const char* name; /* the file's class name (or the index in decimal); owned by the model */
  double probability;
  float logit;
} lowbit_class_score;

typedef struct lowbit_model_info {
  int64_t channels, height, width; /* input per image */
  int64_t num_classes;
  int64_t num_layers;              /* conv / linear layers: lowbit_layer_info(model, 0..num_layers-1) */
  const char* isa;                 /* the kernel level its runs use; owned by the model */
  int threads;
} lowbit_model_info;

typedef struct lowbit_layer_info {
  const char* name; /* owned by the model */
  const char* kind; /* "conv" or "linear" */
  int weight_bits, act_bits;
} lowbit_layer_info;

/* The last failure's message on this thread ("" after a success). */
const char* lowbit_last_error(void);
const char* lowbit_status_name(lowbit_status status);

/* options may be NULL (all defaults). *out is set on success, NULL on failure. */
lowbit_status lowbit_model_load(const char* path, const lowbit_options* options, lowbit_model** out);
lowbit_status lowbit_model_load_bytes(const void* data, size_t size, const lowbit_options* options, lowbit_model** out);
void lowbit_model_free(lowbit_model* model); /* NULL is fine */

lowbit_status lowbit_model_get_info(const lowbit_model* model, lowbit_model_info* out);
lowbit_status lowbit_layer_get_info(const lowbit_model* model, int64_t layer, lowbit_layer_info* out);
/* Class k's name (owned by the model). */
lowbit_status lowbit_class_name(const lowbit_model* model, int64_t k, const char** out);
/* The input normalization, per channel (channels floats each; either may be NULL). */
lowbit_status lowbit_model_normalization(const lowbit_model* model, float* mean, float* std);

/* n images -> logits [n][num_classes]. */
lowbit_status lowbit_run(const lowbit_model* model, const float* images, int64_t n, float* logits);
lowbit_status lowbit_run_u8(const lowbit_model* model, const uint8_t* pixels, int64_t n, lowbit_layout layout,
                            float* logits);

/* One image's logits (num_classes floats) -> probabilities (num_classes doubles). */
lowbit_status lowbit_probabilities(const lowbit_model* model, const float* logits, double* probabilities);
/* One image's logits -> min(k, num_classes) scores, best first; *count gets how many. */
lowbit_status lowbit_top_k(const lowbit_model* model, const float* logits, int64_t k, lowbit_class_score* out,
                           int64_t* count);

/* Image helper: decode (PNG, JPEG, BMP, ...) and resize to the model's input size ->
 * channels*height*width bytes, HWC, into pixels (capacity: its size in bytes). */
lowbit_status lowbit_decode_image(const lowbit_model* model, const void* bytes, size_t size, uint8_t* pixels,
                                  size_t capacity);
lowbit_status lowbit_load_image(const lowbit_model* model, const char* path, uint8_t* pixels, size_t capacity);

/* Convenience: one image file -> its top k classes (decode, resize, normalize, run, softmax). */
lowbit_status lowbit_classify_file(const lowbit_model* model, const char* path, int64_t k, lowbit_class_score* out,
                                   int64_t* count);

#ifdef __cplusplus
}
#endif

#endif /* LOWBIT_RUNTIME_H */
