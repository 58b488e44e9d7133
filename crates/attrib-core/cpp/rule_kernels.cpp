// The fused compute kernels of the backward rules in rules.cpp (declared in rule_kernels.h):
// DeepLIFT's rescale rule, 2-D max pooling with indices, and DeepLIFT's max-pooling rule. The
// loops are written so that GCC vectorizes them (branch-free selections, restrict pointers,
// some helpers kept out of line), with the same arithmetic per element as the ATen
// formulations they replace (crates/attrib-deeplift/tests/rules.rs compares them with ATen bit
// for bit).
#include "rule_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>
#include <ATen/native/Pool.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace attrib_kernels {

// Helpers of the kernels, internal to this file (the kernels that rules.cpp calls are declared
// in rule_kernels.h).
namespace {

// Branch-free pieces of the fused kernels below. GCC does not vectorize a loop that selects
// between a quotient and another value with a floating-point comparison (under its default
// -ftrapping-math both may trap, so the selection stays a branch); comparing magnitudes as
// integers and selecting with a bit mask gives the same answer and lets the loops vectorize.
template <typename T>
using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T>
inline Bits<T> bits_of(T v) {
  Bits<T> b;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

// |v| as an unsigned integer: for a finite or infinite non-negative `e`, `magnitude(v) <
// magnitude(e)` is exactly `std::abs(v) < e` (a NaN's magnitude is above every infinity's, so it
// compares false, as the floating-point comparison does).
template <typename T>
inline Bits<T> magnitude(T v) {
  return bits_of(v) & (~Bits<T>(0) >> 1);
}

// The magnitude below which `std::abs(v) < e` holds, for the comparison above (none for a
// negative or NaN `e`).
template <typename T>
inline Bits<T> below(T e) {
  return e > T(0) ? magnitude(e) : Bits<T>(0);
}

// `yes ? a : b` without a branch.
template <typename T>
inline T pick(bool yes, T a, T b) {
  Bits<T> m = Bits<T>(0) - Bits<T>(yes);
  Bits<T> r = (bits_of(a) & m) | (bits_of(b) & ~m);
  T v;
  std::memcpy(&v, &r, sizeof(T));
  return v;
}
}  // namespace

// The rescale rule in one pass over the paired batch (float32/float64, contiguous, equal
// shapes), the same arithmetic as the elementwise ATen formulation it replaces, so the same
// results bit for bit: for each element i of the input half (n_half elements, its baseline at
// i + n_half), gx = g · (|Δx| < eps ? 0 : Δy/Δx), the baseline half zero. Returns how many
// elements had |Δx| < eps (they need the ordinary gradient, sent through f's own node).
template <typename T>
int64_t rescale_fused(const T *x, const T *y, const T *g, T *gx, int64_t n_half, double eps) {
  const T e = static_cast<T>(eps);  // ATen compares a float tensor with the threshold in float
  std::atomic<int64_t> smalls{0};
  at::parallel_for(0, n_half, at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
    // Restrict pointers and the branch-free selection (see `pick`) let the compiler vectorize
    // the loop; each element's arithmetic is unchanged (the quotient is discarded where
    // |Δx| < eps).
    const T *__restrict xi = x, *__restrict xr = x + n_half, *__restrict yi = y, *__restrict yr = y + n_half;
    const T *__restrict gi = g;
    T *__restrict out = gx;
    const Bits<T> eb = below(e);
    int64_t local = 0;
    for (int64_t i = begin; i < end; ++i) {
      T dx = xi[i] - xr[i];
      T dy = yi[i] - yr[i];
      bool small = magnitude(dx) < eb;  // std::abs(dx) < e
      local += small;
      out[i] = gi[i] * pick(small, T(0), dy / dx);
    }
    smalls += local;
  });
  std::memset(static_cast<void *>(gx + n_half), 0, sizeof(T) * static_cast<size_t>(n_half));
  return smalls.load();
}

namespace {

// One step of a window's scan in `maxpool2d_planes`: `val` at `index` becomes the maximum if it
// is larger, or NaN (ATen's `val > max || isnan(val)`), without a branch.
template <typename T>
inline void scan_step(T val, int64_t index, T &maxval, int64_t &maxindex) {
  bool take = __builtin_isgreater(val, maxval) | __builtin_isunordered(val, val);  // quiet comparisons
  maxindex ^= (maxindex ^ index) & -static_cast<int64_t>(take);
  maxval = pick(take, val, maxval);
}

// One output row of 2×2 windows with stride 2 and no padding or dilation (the common CNN
// pooling), rows `r0` and `r1` of the input: the same scan as the general loop, in a loop the
// compiler vectorizes over the outputs (not inlined: inlined into the parallel loop's lambda, GCC
// left it scalar). `first` is the flat in-plane index of r0[0].
template <typename T>
__attribute__((noinline)) void pool_row_2x2(const T *__restrict r0, const T *__restrict r1, T *__restrict y, int64_t *__restrict idx, int64_t ow_count,
                  int64_t first, int64_t W) {
  for (int64_t ow = 0; ow < ow_count; ++ow) {
    const int64_t i0 = first + 2 * ow;
    T maxval = -std::numeric_limits<T>::infinity();
    int64_t maxindex = i0;
    scan_step(r0[2 * ow], i0, maxval, maxindex);
    scan_step(r0[2 * ow + 1], i0 + 1, maxval, maxindex);
    scan_step(r1[2 * ow], i0 + W, maxval, maxindex);
    scan_step(r1[2 * ow + 1], i0 + W + 1, maxval, maxindex);
    y[ow] = maxval;
    idx[ow] = maxindex;
  }
}

// 2-D max pooling of `planes` contiguous H×W planes into OH×OW outputs with their flat in-plane
// indices, as ATen's CPU kernel for contiguous inputs computes them: a window's maximum is its
// first largest element in scan order, or its last NaN (NaN propagates), and a window of -inf
// only gives -inf and its first element. The comparison (quiet, so that the compiler need not
// keep it a branch) and the selections are branch-free: the data-dependent branches of a
// window's scan cost about half of ATen's time (one thread: 0.36 against 0.69 ms for 32×16×16×16
// ReLU outputs, 2×2 windows); 2×2 windows with stride 2 (`pool_row_2x2`) also vectorize over
// the outputs (0.09 ms).
template <typename T>
void maxpool2d_planes(const T *x, T *y, int64_t *idx, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                      const std::vector<int64_t> &k, const std::vector<int64_t> &s, const std::vector<int64_t> &p,
                      const std::vector<int64_t> &d) {
  const int64_t kH = k[0], kW = k[1], sH = s[0], sW = s[1], pH = p[0], pW = p[1], dH = d[0], dW = d[1];
  int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, H * W));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const T *xp = x + pl * H * W;
      T *yp = y + pl * OH * OW;
      int64_t *ip = idx + pl * OH * OW;
      if (kH == 2 && kW == 2 && sH == 2 && sW == 2 && pH == 0 && pW == 0 && dH == 1 && dW == 1 && 2 * OH <= H &&
          2 * OW <= W) {  // every window whole
        for (int64_t oh = 0; oh < OH; ++oh)
          pool_row_2x2(xp + 2 * oh * W, xp + (2 * oh + 1) * W, yp + oh * OW, ip + oh * OW, OW, 2 * oh * W, W);
        continue;
      }
      for (int64_t oh = 0; oh < OH; ++oh) {
        int64_t ih0 = oh * sH - pH;
        int64_t ih1 = std::min(ih0 + (kH - 1) * dH + 1, H);
        while (ih0 < 0) ih0 += dH;
        for (int64_t ow = 0; ow < OW; ++ow) {
          int64_t iw0 = ow * sW - pW;
          int64_t iw1 = std::min(iw0 + (kW - 1) * dW + 1, W);
          while (iw0 < 0) iw0 += dW;
          int64_t maxindex = ih0 * W + iw0;
          T maxval = -std::numeric_limits<T>::infinity();
          for (int64_t ih = ih0; ih < ih1; ih += dH) {
            for (int64_t iw = iw0; iw < iw1; iw += dW) {
              int64_t index = ih * W + iw;
              scan_step(xp[index], index, maxval, maxindex);
            }
          }
          yp[oh * OW + ow] = maxval;
          ip[oh * OW + ow] = maxindex;
        }
      }
    }
  });
}
}  // namespace

// `maxpool2d_planes` for a contiguous 4-D float32/float64 CPU input with valid parameters: sets
// `y` and `idx` (equal to ATen's max_pool2d_with_indices) and returns true; false for anything
// else (ATen pools it, and reports parameters it rejects).
bool pool2d_fast(const at::Tensor &x, const std::vector<int64_t> &k, const std::vector<int64_t> &s,
                 const std::vector<int64_t> &p, const std::vector<int64_t> &d, bool ceil, int64_t dims, at::Tensor &y,
                 at::Tensor &idx) {
  if (dims != 2 || x.dim() != 4 || !x.device().is_cpu() || !x.is_contiguous() || x.numel() == 0 ||
      (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble))
    return false;
  if (k.size() != 2 || s.size() != 2 || p.size() != 2 || d.size() != 2) return false;
  for (size_t i = 0; i < 2; ++i)
    if (k[i] < 1 || s[i] < 1 || d[i] < 1 || p[i] < 0 || p[i] > k[i] / 2) return false;
  const int64_t H = x.size(2), W = x.size(3);
  const int64_t OH = at::native::pooling_output_shape<int64_t>(H, k[0], p[0], s[0], d[0], ceil);
  const int64_t OW = at::native::pooling_output_shape<int64_t>(W, k[1], p[1], s[1], d[1], ceil);
  if (OH < 1 || OW < 1) return false;
  y = at::empty({x.size(0), x.size(1), OH, OW}, x.options());
  idx = at::empty({x.size(0), x.size(1), OH, OW}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "attrib_maxpool2d", [&] {
    maxpool2d_planes<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), idx.mutable_data_ptr<int64_t>(),
                               x.size(0) * x.size(1), H, W, OH, OW, k, s, p, d);
  });
  return true;
}

namespace {

// The last step of the max-pool rule for one plane of `n` elements: gx = |Δx| < e ? ordinary :
// (to_in + to_ref)/Δx, with Δx = xi − xr. A function of its own (not inlined) with restrict
// parameters and a branch-free selection (see `pick`), so that the loop vectorizes; the same
// arithmetic per element.
template <typename T>
__attribute__((noinline)) void maxpool_choose(const T *__restrict xi, const T *__restrict xr, const T *__restrict to_in,
                    const T *__restrict to_ref, const T *__restrict ordinary, T *__restrict gx, int64_t n, T e) {
  const Bits<T> eb = below(e);
  for (int64_t j = 0; j < n; ++j) {
    T dx = xi[j] - xr[j];
    gx[j] = pick(magnitude(dx) < eb, ordinary[j], (to_in[j] + to_ref[j]) / dx);  // std::abs(dx) < e ? ...
  }
}
}  // namespace

// DeepLIFT's max-pooling rule (attrib's exact form) in one pass per pooling plane
// (float32/float64, contiguous), the same arithmetic as the ATen formulation kept for Captum's
// form, so the same results bit for bit. `planes` input-half planes of `in_size` elements (their
// baselines `planes` planes further) pooled to `out_size` elements with flat in-plane indices
// `idx`. Per plane: each window sends g·(max(y, y_ref) − y_ref) to the input's arg-max and
// g·(y − max(y, y_ref)) to the reference's (contributions of overlapping windows added in window
// order, as scatter_add), and g to the input's arg-max for the ordinary gradient (as
// max_pool_backward); then gx = |Δx| < eps ? ordinary : (routed_in + routed_ref)/Δx. The
// baseline half of gx is zero.
template <typename T>
void maxpool_fused(const T *x, const T *y, const int64_t *idx, const T *g, T *gx, int64_t planes, int64_t in_size,
                   int64_t out_size, double eps) {
  const T e = static_cast<T>(eps);
  const int64_t in_ref = planes * in_size, out_ref = planes * out_size;
  int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, in_size));
  std::atomic<bool> bad{false};
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> to_in(in_size), to_ref(in_size), ordinary(in_size);
    for (int64_t p = begin; p < end; ++p) {
      std::fill(to_in.begin(), to_in.end(), T(0));
      std::fill(to_ref.begin(), to_ref.end(), T(0));
      std::fill(ordinary.begin(), ordinary.end(), T(0));
      const int64_t o0 = p * out_size;
      for (int64_t o = o0; o < o0 + out_size; ++o) {
        T yi = y[o], yr = y[o + out_ref], gg = g[o];
        T m = std::isnan(yi) ? yi : std::isnan(yr) ? yr : std::max(yi, yr);  // at::max (NaN propagates)
        int64_t ii = idx[o], ir = idx[o + out_ref];
        if (ii < 0 || ii >= in_size || ir < 0 || ir >= in_size) {
          bad = true;
          continue;
        }
        to_in[ii] += gg * (m - yr);
        to_ref[ir] += gg * (yi - m);
        ordinary[ii] += gg;
      }
      const int64_t i0 = p * in_size;
      maxpool_choose(x + i0, x + i0 + in_ref, to_in.data(), to_ref.data(), ordinary.data(), gx + i0, in_size, e);
    }
  });
  TORCH_CHECK(!bad.load(), "max-pooling indices outside their plane in DeepLIFT's max-pool rule");
  std::memset(static_cast<void *>(gx + in_ref), 0, sizeof(T) * static_cast<size_t>(in_ref));
}
template int64_t rescale_fused<float>(const float *, const float *, const float *, float *, int64_t, double);
template int64_t rescale_fused<double>(const double *, const double *, const double *, double *, int64_t, double);
template void maxpool_fused<float>(const float *, const float *, const int64_t *, const float *, float *, int64_t,
                                   int64_t, int64_t, double);
template void maxpool_fused<double>(const double *, const double *, const int64_t *, const double *, double *,
                                    int64_t, int64_t, int64_t, double);

}  // namespace attrib_kernels
