// A TorchScript module from the bytes of its file, read once by the Rust side
// (attrib_core::ModelFile): every copy of a loaded model (frozen, rewritten, layer) is made from
// the same bytes, so none follows the file after it was loaded.
#pragma once

#include <torch/script.h>

#include <cstddef>
#include <sstream>
#include <string>

namespace attrib_shim {

inline torch::jit::Module load_bytes(const char *data, std::size_t len, int device) {
  torch::Device dev = device < 0 ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, device);
  std::istringstream in(std::string(data, len));
  return torch::jit::load(in, dev);
}

}  // namespace attrib_shim
