// param_groups.cpp: optimizer parameter groups from the quantizers' parameter specs.
#include "models/param_groups.h"

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "quant/training.h"

namespace lowbit {

std::vector<ParamGroup> make_param_groups(Module& model, double lr, double weight_decay,
                                          const QuantGroupOptions& quant) {
  LOWBIT_CHECK(std::isfinite(quant.lr_mult) && quant.lr_mult > 0, "quantizer lr multiplier must be positive, got ",
               quant.lr_mult);
  LOWBIT_CHECK(std::isfinite(quant.weight_decay), "quantizer weight decay must be finite, got ", quant.weight_decay);
  const double quant_decay = quant.weight_decay < 0 ? weight_decay : quant.weight_decay;
  std::set<const TensorImpl*> quant_params;
  std::vector<ParamGroup> kind_groups;  // shared-kind groups, in first-seen order
  std::map<std::string, size_t> kind_index;
  std::vector<ParamGroup> own_groups;   // per-parameter groups (QIL)
  for (auto& [qname, q] : named_quantizers(model)) {
    for (auto& spec : q->param_specs()) {
      quant_params.insert(spec.tensor.impl());
      ParamGroup g;
      g.lr = lr * quant.lr_mult;
      g.weight_decay = spec.weight_decay ? quant_decay : 0.0;
      g.min_value = spec.min_value;
      if (spec.grad_scale) {
        g.name = spec.kind + ":" + qname;
        g.params = {spec.tensor};
        g.grad_scale = spec.grad_scale();
        g.post_step = [fn = spec.grad_scale](ParamGroup& group) { group.grad_scale = fn(); };
        own_groups.push_back(std::move(g));
        continue;
      }
      auto it = kind_index.find(spec.kind);
      if (it == kind_index.end()) {
        g.name = spec.kind;
        kind_index[spec.kind] = kind_groups.size();
        kind_groups.push_back(std::move(g));
        it = kind_index.find(spec.kind);
      }
      kind_groups[it->second].params.push_back(spec.tensor);
    }
  }
  ParamGroup weights;
  weights.name = "weights";
  weights.lr = lr;
  weights.weight_decay = weight_decay;
  for (auto& [name, t] : model.named_parameters())
    if (!quant_params.count(t.impl())) weights.params.push_back(t);
  std::vector<ParamGroup> groups;
  if (!weights.params.empty()) groups.push_back(std::move(weights));
  for (auto& g : kind_groups) groups.push_back(std::move(g));
  for (auto& g : own_groups) groups.push_back(std::move(g));
  return groups;
}

std::vector<ParamGroup> parameter_groups(Module& model, const QuantPolicy& policy, double lr, double weight_decay,
                                         const QuantGroupOptions& quant) {
  if (policy.quantized()) return make_param_groups(model, lr, weight_decay, quant);
  ParamGroup all;
  all.name = "weights";
  all.params = model.parameters();
  all.lr = lr;
  all.weight_decay = weight_decay;
  return {all};
}

}  // namespace lowbit
