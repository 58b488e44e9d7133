// A TorchScript module from the bytes of its file, read once by the Rust side
// (attrib_core::ModelFile): every copy of a loaded model (frozen, rewritten, layer) is made from
// the same bytes, so none follows the file after it was loaded.
#pragma once

#include <torch/script.h>

#include <cstddef>
#include <istream>
#include <streambuf>

namespace attrib_shim {

// A read-only, seekable stream buffer over bytes that outlive it: torch::jit::load reads the
// archive through it without copying the bytes (std::istringstream would copy them twice).
class BytesBuf : public std::streambuf {
 public:
  BytesBuf(const char *data, std::size_t len) {
    char *begin = const_cast<char *>(data);  // never written: no put area, no putback
    setg(begin, begin, begin + len);
  }

 protected:
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override {
    if (which & std::ios_base::out) return pos_type(off_type(-1));
    const off_type size = egptr() - eback();
    const off_type from = dir == std::ios_base::beg ? 0 : dir == std::ios_base::cur ? gptr() - eback() : size;
    const off_type to = from + off;
    if (to < 0 || to > size) return pos_type(off_type(-1));
    setg(eback(), eback() + to, egptr());
    return pos_type(to);
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode which) override {
    return seekoff(off_type(pos), std::ios_base::beg, which);
  }
};

inline torch::jit::Module load_bytes(const char *data, std::size_t len, int device) {
  torch::Device dev = device < 0 ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, device);
  BytesBuf buf(data, len);
  std::istream in(&buf);
  return torch::jit::load(in, dev);
}

}  // namespace attrib_shim
