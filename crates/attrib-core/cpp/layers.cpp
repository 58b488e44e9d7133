// Layer access on TorchScript models, for attrib's layer attribution methods.
//
// A layer is named by its submodule path as `named_modules()` prints it (`layer4`,
// `layer3.1.conv2`, `features.3`). The model's forward graph is copied and the call of that
// submodule found: traced and scripted modules call submodules through `prim::CallMethod` on a
// chain of `prim::GetAttr` nodes starting at `self`; the path of every module value is followed
// from `self`, and only the calls of modules on the way to the layer (a prefix of its path) are
// inlined, until the layer's own call appears. Then:
//
// - the layer's output (or its first argument, for attribution to the layer's input) becomes a
//   second result: forward returns `(model output, layer value)`;
// - optionally, that value is replaced by a new last graph input, so that a method can feed the
//   layer any tensor (integrate or perturb over the layer instead of the model's inputs); the
//   second result is then that input.
//
// The copy runs as a new graph function on the loaded module; the module's own `forward` is
// left as it was. A name that is not a submodule is an error listing the submodules; a
// submodule called more than once (or never) by forward is an error too, as its "output" would
// be ambiguous.
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>

#include "load_bytes.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

char *copy_message(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

// A loaded module with the rewritten forward as its own graph function.
struct LayerModule {
  torch::jit::Module module;
  std::unique_ptr<torch::jit::GraphFunction> fn;
};

bool is_module(Value *v) {
  auto cls = v->type()->cast<c10::ClassType>();
  return cls && cls->is_module();
}

// Whether `prefix` is a proper ancestor path of `path` ("" is everyone's).
bool is_ancestor(const std::string &prefix, const std::string &path) {
  if (prefix.empty()) return true;
  return path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 && path[prefix.size()] == '.';
}

// Paths of the module values of the graph's top-level block, from `self` (the first input).
std::unordered_map<Value *, std::string> module_paths(Graph &graph) {
  std::unordered_map<Value *, std::string> paths;
  paths[graph.inputs()[0]] = "";
  for (Node *n : graph.nodes()) {
    if (n->kind() != c10::prim::GetAttr || !is_module(n->output())) continue;
    auto it = paths.find(n->input(0));
    if (it == paths.end()) continue;
    const std::string &name = n->s(c10::attr::name);
    paths[n->output()] = it->second.empty() ? name : it->second + "." + name;
  }
  return paths;
}

std::string submodule_list(const torch::jit::Module &module) {
  std::ostringstream os;
  bool first = true;
  for (const auto &item : module.named_modules()) {
    if (item.name.empty()) continue;
    os << (first ? "" : ", ") << item.name;
    first = false;
  }
  return first ? std::string("(none: the model has no submodules)") : os.str();
}

bool has_submodule(const torch::jit::Module &module, const std::string &path) {
  for (const auto &item : module.named_modules())
    if (item.name == path) return true;
  return false;
}

// Inline the calls on the way to `path` until the layer's call shows; return it.
Node *find_layer_call(Graph &graph, const std::string &path) {
  for (int round = 0; round < 64; ++round) {
    auto paths = module_paths(graph);
    std::vector<Node *> hits, on_path;
    for (Node *n : graph.nodes()) {
      if (n->kind() != c10::prim::CallMethod) continue;
      auto it = paths.find(n->input(0));
      if (it == paths.end()) continue;
      if (it->second == path && n->s(c10::attr::name) == "forward")
        hits.push_back(n);
      else if (is_ancestor(it->second, path) || it->second == path)
        on_path.push_back(n);
    }
    if (hits.size() > 1) {
      std::ostringstream os;
      os << "layer '" << path << "' is called " << hits.size()
         << " times by forward; its output is ambiguous (name a submodule that forward calls once)";
      throw std::runtime_error(os.str());
    }
    if (hits.size() == 1 && on_path.empty()) return hits[0];
    if (on_path.empty()) break;
    // Inline the enclosing calls (and other methods of the layer itself) and look again.
    for (Node *n : on_path) {
      auto cls = n->input(0)->type()->expect<c10::ClassType>();
      auto &callee = torch::jit::toGraphFunction(cls->getMethod(n->s(c10::attr::name)));
      // `false`: the function's own graph, not its optimised one (whose calls are all inlined).
      torch::jit::inlineCallTo(n, &callee, false);
    }
  }
  throw std::runtime_error("layer '" + path +
                           "' is a submodule, but forward never calls it directly (it may be called inside "
                           "control flow, or not at all)");
}

// Rewrite `graph` (a copy of forward's) for layer `path`; see the file's comment.
void rewrite(Graph &graph, const std::string &path, bool layer_input, bool substitute) {
  Node *call = find_layer_call(graph, path);
  Value *layer = nullptr;
  if (layer_input) {
    if (call->inputs().size() < 2)
      throw std::runtime_error("layer '" + path + "' takes no argument, so it has no input to attribute to");
    if (call->inputs().size() > 2)
      throw std::runtime_error("layer '" + path + "' takes several arguments; attribution to its input needs one");
    layer = call->input(1);
  } else {
    if (call->outputs().size() != 1) throw std::runtime_error("layer '" + path + "' has no single output");
    layer = call->output();
  }
  if (layer->type()->kind() != c10::TypeKind::TensorType)
    throw std::runtime_error("layer '" + path + "' " + (layer_input ? "takes" : "returns") + " " +
                             layer->type()->str() + ", not a tensor");
  if (substitute) {
    Value *fed = graph.addInput("attrib_layer")->setType(layer->type());
    if (layer_input)
      call->replaceInput(1, fed);
    else
      layer->replaceAllUsesWith(fed);
    layer = fed;
  }
  Value *out = graph.outputs()[0];
  Node *tuple = graph.insertNode(graph.createTuple({out, layer}));
  graph.eraseOutput(0);
  graph.registerOutput(tuple->output());
}

}  // namespace

namespace attrib_shim {

// Load the TorchScript file whose `len` bytes are at `data` on `device` with layer `layer`
// exposed (see attrib_layer_load), then hand the rewritten graph to `post` (layer_rules.cpp
// applies the backward rules there) before it becomes the module's graph function. Returns a handle for attrib_layer_forward / attrib_layer_free;
// throws on error.
void *load_layer(const char *data, size_t len, int device, const char *layer, int layer_input, int substitute, int dtype,
                 const std::function<void(const std::shared_ptr<Graph> &)> &post) {
  torch::jit::Module module = load_bytes(data, len, device);
  module.eval();
  if (dtype >= 0) module.to(static_cast<at::ScalarType>(dtype));
  std::string name(layer);
  if (!has_submodule(module, name))
    throw std::runtime_error("no layer named '" + name + "'; the model's submodules are: " + submodule_list(module));
  auto &forward = torch::jit::toGraphFunction(module.get_method("forward").function());
  auto graph = forward.graph()->copy();
  rewrite(*graph, name, layer_input != 0, substitute != 0);
  if (post) post(graph);
  auto fn = std::make_unique<torch::jit::GraphFunction>("attrib_layer_forward", graph, nullptr);
  return new LayerModule{std::move(module), std::move(fn)};
}

}  // namespace attrib_shim

extern "C" {

// Load the TorchScript file whose `len` bytes are at `data` on `device` (-1: CPU, k >= 0: CUDA k)
// with a forward that also returns layer `layer`'s output (`layer_input`: its input), or takes it
// as an extra last input (`substitute`). `dtype` >= 0 converts the floating-point parameters
// (as `model.to(dtype)`). Returns a handle for attrib_layer_forward / attrib_layer_free, or null
// with `*err`.
void *attrib_layer_load(const char *data, size_t len, int device, const char *layer, int layer_input, int substitute,
                        int dtype, char **err) {
  try {
    return attrib_shim::load_layer(data, len, device, layer, layer_input, substitute, dtype, nullptr);
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
    return nullptr;
  }
}

// Run the rewritten forward on `n` tensors (`at::Tensor *`; with `substitute`, the layer value
// last). Sets `*model_out` (the output, or the first element of a tuple output) and `*layer_out`
// to new tensors; returns 0, or 1 with `*err`.
int attrib_layer_forward(void *handle, void *const *inputs, int n, void **model_out, void **layer_out, char **err) {
  try {
    auto *m = static_cast<LayerModule *>(handle);
    torch::jit::Stack stack;
    stack.reserve(n + 1);
    stack.emplace_back(m->module._ivalue());
    for (int i = 0; i < n; ++i) stack.emplace_back(*static_cast<at::Tensor *>(inputs[i]));
    m->fn->run(stack);
    auto result = stack.back().toTuple();
    const auto &elements = result->elements();
    torch::jit::IValue out = elements[0];
    if (out.isTuple()) {
      const auto &inner = out.toTupleRef().elements();
      if (inner.empty()) throw std::runtime_error("the model returned an empty tuple");
      out = inner[0];
    }
    if (!out.isTensor()) throw std::runtime_error("the model returned " + out.tagKind() + ", not a tensor");
    *model_out = new at::Tensor(out.toTensor());
    *layer_out = new at::Tensor(elements[1].toTensor());
    return 0;
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
    return 1;
  }
}

void attrib_layer_free(void *handle) { delete static_cast<LayerModule *>(handle); }
}

extern "C" {

// The embedding submodules of the module behind `handle` (nn.Embedding and nn.EmbeddingBag, by
// their class name), for checking token-id inputs before they reach libtorch: one line per
// submodule, "PATH\tBAG\tROWS" (BAG 1 for an EmbeddingBag, ROWS the weight's first dimension),
// in named_modules() order. Returns a new string (possibly empty), or null with `*err`.
char *attrib_layer_embeddings(void *handle, char **err) {
  try {
    auto *m = static_cast<LayerModule *>(handle);
    std::ostringstream os;
    for (const auto &item : m->module.named_modules()) {
      if (item.name.empty()) continue;
      auto type = item.value.type();
      if (!type->name()) continue;
      const std::string q = type->name()->qualifiedName();
      auto ends_with = [&](const std::string &s) {
        return q.size() >= s.size() && q.compare(q.size() - s.size(), s.size(), s) == 0;
      };
      const bool bag = ends_with(".EmbeddingBag");
      if (!bag && !ends_with(".Embedding")) continue;
      if (!item.value.hasattr("weight")) continue;
      auto w = item.value.attr("weight");
      if (!w.isTensor() || w.toTensor().dim() != 2) continue;
      os << item.name << '\t' << (bag ? 1 : 0) << '\t' << w.toTensor().size(0) << '\n';
    }
    return copy_message(os.str());
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
    return nullptr;
  }
}
}
