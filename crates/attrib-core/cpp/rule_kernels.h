// The fused compute kernels of the backward rules (rule_kernels.cpp), called by the autograd
// functions in rules.cpp: DeepLIFT's rescale rule, max pooling with indices, and DeepLIFT's
// max-pooling rule, each one pass over contiguous float32/float64 CPU data with the same
// results as the ATen formulation bit for bit.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace attrib_kernels {

// The rescale rule in one pass over the paired batch (see rule_kernels.cpp). Instantiated for
// float and double.
template <typename T>
int64_t rescale_fused(const T *x, const T *y, const T *g, T *gx, int64_t n_half, double eps);

// 2-D max pooling with indices for a contiguous 4-D float32/float64 CPU input with valid
// parameters (see rule_kernels.cpp); false where ATen has to pool it.
bool pool2d_fast(const at::Tensor &x, const std::vector<int64_t> &k, const std::vector<int64_t> &s,
                 const std::vector<int64_t> &p, const std::vector<int64_t> &d, bool ceil, int64_t dims, at::Tensor &y,
                 at::Tensor &idx);

// DeepLIFT's max-pooling rule in one pass per pooling plane (see rule_kernels.cpp).
// Instantiated for float and double.
template <typename T>
void maxpool_fused(const T *x, const T *y, const int64_t *idx, const T *g, T *gx, int64_t planes, int64_t in_size,
                   int64_t out_size, double eps);

}  // namespace attrib_kernels
