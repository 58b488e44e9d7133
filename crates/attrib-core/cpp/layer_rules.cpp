// A layer exposed (layers.cpp) in a graph whose backward rules are rewritten (rules.cpp), for
// layer attribution under DeepLIFT's rules (attrib's LayerDeepLift).
//
// The model's forward graph is copied and the layer exposed as layers.cpp does (its output, or
// input, returned beside the model's output, or replaced by a new last graph input); the rules
// rewrite of rules.cpp then runs on that copy: it inlines the remaining calls, makes the graph
// functional and follows every covered non-linearity with its rule node. With the layer
// substituted, the gradient with respect to that last input is the layer's multiplier under the
// rules: only the non-linearities downstream of the layer matter to it (the original layer
// computation, now unused, is dropped with the dead code).
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

namespace attrib_shim {
void *load_layer(const char *data, size_t len, int device, const char *layer, int layer_input, int substitute, int dtype,
                 const std::function<void(const std::shared_ptr<torch::jit::Graph> &)> &post);
void rewrite_rules(const std::shared_ptr<torch::jit::Graph> &graph, int mode, double eps);
}  // namespace attrib_shim

extern "C" {

// As attrib_layer_load, with the backward rules of `mode` (as attrib_rules_load: 0 DeepLIFT,
// 3 DeepLIFT as Captum applies it, 1 guided backprop, 2 deconvolution) and `eps` applied to the
// rewritten graph. Returns a handle for attrib_layer_forward / attrib_layer_free, or null with
// `*err`.
void *attrib_layer_rules_load(const char *data, size_t len, int device, const char *layer, int layer_input, int substitute,
                              int dtype, int mode, double eps, char **err) {
  try {
    return attrib_shim::load_layer(data, len, device, layer, layer_input, substitute, dtype,
                                   [&](const std::shared_ptr<torch::jit::Graph> &g) {
                                     attrib_shim::rewrite_rules(g, mode, eps);
                                   });
  } catch (const std::exception &e) {
    const std::string s = e.what();
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
    *err = p;
    return nullptr;
  }
}
}
