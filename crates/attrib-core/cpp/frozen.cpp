// Inference-only copies of TorchScript modules for attrib-core's `TorchScriptModel`:
// `torch::jit::freeze` (parameters inlined as constants, batch norm folded into convolutions)
// followed by `torch::jit::optimize_for_inference` (oneDNN convolutions with prepacked weights,
// fused activations). tch does not expose these two C++ calls, so this file does, with a plain C
// interface; errors come back as strings, never as C++ exceptions crossing into Rust.
#include <torch/script.h>

#include "load_bytes.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
char *copy_message(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}
}  // namespace

extern "C" {

// Load the TorchScript file whose `len` bytes are at `data` on `device` (-1: CPU, k >= 0: CUDA
// device k), switch it to evaluation mode, freeze and optimise it for inference. Returns a new
// module, or null with `*err` set.
void *attrib_frozen_load(const char *data, size_t len, int device, char **err) {
  try {
    torch::jit::Module module = attrib_shim::load_bytes(data, len, device);
    module.eval();
    torch::jit::Module frozen = torch::jit::freeze(module);
    torch::jit::Module optimized = torch::jit::optimize_for_inference(frozen);
    return new torch::jit::Module(std::move(optimized));
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
    return nullptr;
  }
}

// Run `forward` on `n` tensors (tch tensor pointers, i.e. `at::Tensor *`). Returns a new tensor
// (the output, or the first element of a tuple output), or null with `*err` set.
void *attrib_frozen_forward(void *module, void *const *inputs, int n, char **err) {
  try {
    auto *m = static_cast<torch::jit::Module *>(module);
    std::vector<torch::jit::IValue> args;
    args.reserve(n);
    for (int i = 0; i < n; ++i) args.emplace_back(*static_cast<at::Tensor *>(inputs[i]));
    torch::jit::IValue out = m->forward(std::move(args));
    if (out.isTensor()) return new at::Tensor(out.toTensor());
    if (out.isTuple()) {
      const auto &elements = out.toTupleRef().elements();
      if (!elements.empty() && elements[0].isTensor()) return new at::Tensor(elements[0].toTensor());
    }
    *err = copy_message("the optimized model returned no tensor");
    return nullptr;
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
    return nullptr;
  }
}

void attrib_frozen_free(void *module) { delete static_cast<torch::jit::Module *>(module); }

void attrib_frozen_free_message(char *message) { std::free(message); }
}
