// convert.h: fake-quant model (QAT, eval mode) -> IntGraph (quant/runtime/int_graph.h).
//
// Walks the module tree in execution order (Sequential children, BasicBlock as a unit) and emits:
//  * every QuantConv2d / QuantLinear as a conv / linear op: weights -> codes with the layer's own
//    weight quantizer (Quantizer::codes, so exactly the training grid), reordered to
//    k = (kh*KW + kw)*Cin + c (NHWC im2col order; a linear after a flatten gets its columns
//    permuted from (c, h, w) to (h, w, c)) and packed at pack_bits(bits).
//  * the integer dot product: weight real = s_w' * (wm*m + w0), activation real = s_a*(u - za):
//      odd_symmetric grid (DoReFa, SAWB): wm = 2, w0 = -n_w, s_w' = scale / n_w
//      uniform grid with zero point zp (QIL, LSQ):  wm = 1, w0 = -zp, s_w' = scale
//      sum_k w_k a_k = s_w' s_a * (acc' + K0_c),  acc' = wm*acc + w0*sum_k u_k  (GEMM epilogue),
//      K0_c = -za * (wm*sum_k m_ck + w0*K)  (a per-channel integer; 0 unless the input is signed)
//    so the layer output before BN is  z_c = A_c*acc' + B_c,  A_c = s_w' s_a,
//    B_c = A_c*K0_c + bias_c.
//  * BatchNorm (eval statistics) folds in: g = gamma / sqrt(var + eps);  A_c *= g;
//    B_c = (B_c - mean_c)*g + beta_c.
//  * ReLU / fused BN-ReLU, max pool and flatten after a conv are deferred until the consumer is
//    known. When the consumer is the next layer's activation quantizer Q and Q's method rule has
//    an affine form (ActCodeRule::affine, quant/registry.h: pact, dorefa, qil, lsq; all
//    y -> clamp(round(mul*y + add), 0, n) with mul > 0), Q folds into the epilogue:
//      code = clamp(round(fl(fl(acc' * S_c) + T_c)), 0, n),  S_c = mul*A_c,  T_c = mul*B_c + add
//    (ReLU is then the clamp at 0, valid because Q(0) = 0; otherwise the float path is used),
//    and max pool runs on the codes (max commutes with a monotone non-decreasing quantizer).
//    Otherwise (residual add, global average pool, logits) the epilogue produces float z and the
//    deferred ops run in float.
//  * a float value feeding a quantized layer gets a quantize op: the quantizer's code_spec(), run
//    by its method's ActCodeRule (the quantizer's exact rule). No quantizer type is named here.
//  * residual blocks: y = relu(bn2(conv2(.)) + shortcut(x)) with x, the add and y in float32.
// The first layer's input is the normalised image, quantized by the 8-bit SignedInputQuantizer
// (codes u = c + q, zero point q = 127: the K0_c correction). The last layer produces float logits.
// Requires every Conv2d/Linear to be quantized on both sides (wbits, abits <= 8), groups 1,
// dilation 1, and K small enough for the int32 guard (gemm_k_limit); throws lowbit::Error
// naming the layer otherwise.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/module.h"
#include "quant/runtime/int_graph.h"

namespace lowbit::intq {

struct ExportInfo {
  int64_t channels = 1, height = 28, width = 28;  // input image shape
  std::vector<float> mean, std;                    // input normalisation (per channel)
  std::vector<std::string> class_names;            // may be empty
  std::string method;                              // quantization method (policy)
  nlohmann::json provenance = nlohmann::json::object();
};

// Throws lowbit::Error naming the field unless `info` can make a loadable file: input shape within
// ModelFileLimits, mean and std one finite entry per channel (std > 0), provenance an object.
void check_export_info(const ExportInfo& info);

// The model must be a converted (quant/policy.h) model whose quantizers are initialised.
// It is switched to eval mode. Checks `info` first (check_export_info), and that class_names is
// empty or names every class.
IntGraph convert_to_int(Module& model, const ExportInfo& info);

}  // namespace lowbit::intq
