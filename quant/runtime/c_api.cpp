// c_api.cpp: lowbit_runtime.h over IntModel (one implementation: every C call is an IntModel
// call plus the status/message translation). Exceptions never cross the C boundary.
#include "quant/runtime/lowbit_runtime.h"

#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/file_io.h"
#include "quant/runtime/image.h"
#include "quant/runtime/int_model.h"

struct lowbit_model {
  lowbit::IntModel model;
  std::vector<std::string> class_names;  // what lowbit_class_score::name points into
  std::vector<lowbit::LayerInfo> layers;
  std::string isa;
};

namespace {

thread_local std::string g_last_error;  // per thread: the C API's errno-like message slot

lowbit_status fail(lowbit_status status, const std::string& message) {
  g_last_error = message;
  return status;
}

// Runs f, mapping lowbit::Error to `on_error` and anything else to an internal error.
template <class F>
lowbit_status guarded(lowbit_status on_error, F&& f) {
  try {
    g_last_error.clear();
    f();
    return LOWBIT_OK;
  } catch (const lowbit::Error& e) {
    return fail(on_error, e.what());
  } catch (const std::bad_alloc&) {
    return fail(LOWBIT_INTERNAL_ERROR, "out of memory");
  } catch (const std::exception& e) {
    return fail(LOWBIT_INTERNAL_ERROR, e.what());
  }
}

lowbit::RuntimeOptions runtime_options(const lowbit_options* o) {
  lowbit::RuntimeOptions r;
  if (o) {
    r.threads = o->threads;
    r.isa = o->isa ? o->isa : "";
  }
  return r;
}

lowbit_status make_model(const std::string& bytes, const lowbit_options* options, const std::string& what,
                         lowbit_model** out) {
  return guarded(LOWBIT_INVALID_MODEL, [&] {
    const lowbit::RuntimeOptions ro = runtime_options(options);
    lowbit::IntModel m = lowbit::IntModel::from_bytes(bytes.data(), bytes.size(), ro, what);
    auto* h = new lowbit_model{std::move(m), {}, {}, {}};
    for (int64_t k = 0; k < h->model.num_classes(); ++k) h->class_names.push_back(h->model.class_name(k));
    h->layers = h->model.layers();
    h->isa = h->model.isa();
    *out = h;
  });
}

bool bad_options(const lowbit_options* o, lowbit_status& status) {
  status = guarded(LOWBIT_INVALID_ARGUMENT, [&] { lowbit::check_runtime_options(runtime_options(o), "lowbit_options"); });
  return status != LOWBIT_OK;
}

#define LOWBIT_REQUIRE(cond, ...) \
  if (!(cond)) return fail(LOWBIT_INVALID_ARGUMENT, lowbit::detail::concat(__VA_ARGS__))

}  // namespace

extern "C" {

const char* lowbit_last_error(void) { return g_last_error.c_str(); }

const char* lowbit_status_name(lowbit_status status) {
  switch (status) {
    case LOWBIT_OK: return "ok";
    case LOWBIT_INVALID_ARGUMENT: return "invalid argument";
    case LOWBIT_INVALID_MODEL: return "invalid model";
    case LOWBIT_IO_ERROR: return "i/o error";
    case LOWBIT_INTERNAL_ERROR: return "internal error";
  }
  return "unknown status";  // a value outside the enum (a C caller may pass any int)
}

lowbit_status lowbit_model_load(const char* path, const lowbit_options* options, lowbit_model** out) {
  LOWBIT_REQUIRE(out, "lowbit_model_load: out is NULL");
  *out = nullptr;
  LOWBIT_REQUIRE(path, "lowbit_model_load: path is NULL");
  lowbit_status st = LOWBIT_OK;
  if (bad_options(options, st)) return st;
  std::string bytes;
  st = guarded(LOWBIT_IO_ERROR, [&] { bytes = lowbit::read_whole_file(path, "model file"); });
  if (st != LOWBIT_OK) return st;
  return make_model(bytes, options, path, out);
}

lowbit_status lowbit_model_load_bytes(const void* data, size_t size, const lowbit_options* options, lowbit_model** out) {
  LOWBIT_REQUIRE(out, "lowbit_model_load_bytes: out is NULL");
  *out = nullptr;
  LOWBIT_REQUIRE(data || size == 0, "lowbit_model_load_bytes: data is NULL");
  lowbit_status st = LOWBIT_OK;
  if (bad_options(options, st)) return st;
  std::string bytes;
  st = guarded(LOWBIT_INTERNAL_ERROR, [&] { bytes.assign(static_cast<const char*>(data), size); });
  if (st != LOWBIT_OK) return st;
  return make_model(bytes, options, "model bytes", out);
}

void lowbit_model_free(lowbit_model* model) { delete model; }

lowbit_status lowbit_model_get_info(const lowbit_model* model, lowbit_model_info* out) {
  LOWBIT_REQUIRE(model && out, "lowbit_model_get_info: model or out is NULL");
  out->channels = model->model.channels();
  out->height = model->model.height();
  out->width = model->model.width();
  out->num_classes = model->model.num_classes();
  out->num_layers = static_cast<int64_t>(model->layers.size());
  out->isa = model->isa.c_str();
  out->threads = model->model.threads();
  g_last_error.clear();
  return LOWBIT_OK;
}

lowbit_status lowbit_layer_get_info(const lowbit_model* model, int64_t layer, lowbit_layer_info* out) {
  LOWBIT_REQUIRE(model && out, "lowbit_layer_get_info: model or out is NULL");
  const int64_t n = static_cast<int64_t>(model->layers.size());
  LOWBIT_REQUIRE(layer >= 0 && layer < n, "lowbit_layer_get_info: layer ", layer, " is outside [0, ", n, ")");
  const lowbit::LayerInfo& l = model->layers[static_cast<size_t>(layer)];
  out->name = l.name.c_str();
  out->kind = l.kind.c_str();
  out->weight_bits = l.weight_bits;
  out->act_bits = l.act_bits;
  g_last_error.clear();
  return LOWBIT_OK;
}

lowbit_status lowbit_class_name(const lowbit_model* model, int64_t k, const char** out) {
  LOWBIT_REQUIRE(model && out, "lowbit_class_name: model or out is NULL");
  const int64_t n = static_cast<int64_t>(model->class_names.size());
  LOWBIT_REQUIRE(k >= 0 && k < n, "lowbit_class_name: class ", k, " is outside [0, ", n, ")");
  *out = model->class_names[static_cast<size_t>(k)].c_str();
  g_last_error.clear();
  return LOWBIT_OK;
}

lowbit_status lowbit_model_normalization(const lowbit_model* model, float* mean, float* std) {
  LOWBIT_REQUIRE(model, "lowbit_model_normalization: model is NULL");
  const auto& m = model->model.mean();
  const auto& s = model->model.std_dev();
  if (mean) std::memcpy(mean, m.data(), m.size() * sizeof(float));
  if (std) std::memcpy(std, s.data(), s.size() * sizeof(float));
  g_last_error.clear();
  return LOWBIT_OK;
}

lowbit_status lowbit_run(const lowbit_model* model, const float* images, int64_t n, float* logits) {
  LOWBIT_REQUIRE(model, "lowbit_run: model is NULL");
  LOWBIT_REQUIRE(n >= 0, "lowbit_run: image count ", n, " is negative");
  LOWBIT_REQUIRE(n == 0 || (images && logits), "lowbit_run: images or logits is NULL");
  return guarded(LOWBIT_INVALID_ARGUMENT, [&] { model->model.run(images, n, logits); });
}

lowbit_status lowbit_run_u8(const lowbit_model* model, const uint8_t* pixels, int64_t n, lowbit_layout layout,
                            float* logits) {
  LOWBIT_REQUIRE(model, "lowbit_run_u8: model is NULL");
  LOWBIT_REQUIRE(n >= 0, "lowbit_run_u8: image count ", n, " is negative");
  LOWBIT_REQUIRE(n == 0 || (pixels && logits), "lowbit_run_u8: pixels or logits is NULL");
  LOWBIT_REQUIRE(layout == LOWBIT_HWC || layout == LOWBIT_CHW, "lowbit_run_u8: layout ", static_cast<int>(layout),
                 " is neither LOWBIT_HWC nor LOWBIT_CHW");
  return guarded(LOWBIT_INVALID_ARGUMENT, [&] {
    model->model.run_u8(pixels, n, layout == LOWBIT_HWC ? lowbit::PixelLayout::hwc : lowbit::PixelLayout::chw, logits);
  });
}

lowbit_status lowbit_probabilities(const lowbit_model* model, const float* logits, double* probabilities) {
  LOWBIT_REQUIRE(model && logits && probabilities, "lowbit_probabilities: model, logits or probabilities is NULL");
  model->model.probabilities(logits, probabilities);
  g_last_error.clear();
  return LOWBIT_OK;
}

lowbit_status lowbit_top_k(const lowbit_model* model, const float* logits, int64_t k, lowbit_class_score* out,
                           int64_t* count) {
  LOWBIT_REQUIRE(model && logits && out && count, "lowbit_top_k: model, logits, out or count is NULL");
  LOWBIT_REQUIRE(k >= 1, "lowbit_top_k: k must be at least 1, got ", k);
  return guarded(LOWBIT_INTERNAL_ERROR, [&] {
    const std::vector<lowbit::ClassScore> top = model->model.top_k(logits, k);
    for (size_t i = 0; i < top.size(); ++i)
      out[i] = {top[i].index, model->class_names[static_cast<size_t>(top[i].index)].c_str(), top[i].probability,
                top[i].logit};
    *count = static_cast<int64_t>(top.size());
  });
}

lowbit_status lowbit_decode_image(const lowbit_model* model, const void* bytes, size_t size, uint8_t* pixels,
                                  size_t capacity) {
  LOWBIT_REQUIRE(model && bytes && pixels, "lowbit_decode_image: model, bytes or pixels is NULL");
  const auto need = static_cast<size_t>(model->model.input_size());
  LOWBIT_REQUIRE(capacity >= need, "lowbit_decode_image: pixels holds ", capacity, " bytes, the model's input needs ",
                 need);
  return guarded(LOWBIT_IO_ERROR, [&] {
    const std::vector<uint8_t> px = lowbit::decode_image(bytes, size, model->model.channels(), model->model.height(),
                                                         model->model.width(), "bytes");
    std::memcpy(pixels, px.data(), px.size());
  });
}

lowbit_status lowbit_load_image(const lowbit_model* model, const char* path, uint8_t* pixels, size_t capacity) {
  LOWBIT_REQUIRE(model && path && pixels, "lowbit_load_image: model, path or pixels is NULL");
  const auto need = static_cast<size_t>(model->model.input_size());
  LOWBIT_REQUIRE(capacity >= need, "lowbit_load_image: pixels holds ", capacity, " bytes, the model's input needs ",
                 need);
  return guarded(LOWBIT_IO_ERROR, [&] {
    const std::vector<uint8_t> px =
        lowbit::load_image_file(path, model->model.channels(), model->model.height(), model->model.width());
    std::memcpy(pixels, px.data(), px.size());
  });
}

lowbit_status lowbit_classify_file(const lowbit_model* model, const char* path, int64_t k, lowbit_class_score* out,
                                   int64_t* count) {
  LOWBIT_REQUIRE(model && path && out && count, "lowbit_classify_file: model, path, out or count is NULL");
  std::vector<uint8_t> px(static_cast<size_t>(model->model.input_size()));
  lowbit_status st = lowbit_load_image(model, path, px.data(), px.size());
  if (st != LOWBIT_OK) return st;
  std::vector<float> logits(static_cast<size_t>(model->model.num_classes()));
  st = lowbit_run_u8(model, px.data(), 1, LOWBIT_HWC, logits.data());
  if (st != LOWBIT_OK) return st;
  return lowbit_top_k(model, logits.data(), k, out, count);
}

}  // extern "C"
