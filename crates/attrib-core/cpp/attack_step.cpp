// One step of a gradient-sign attack (FGSM/PGD, attrib-robust) in a single pass over the
// elements, with a plain C interface. The same float operations in the same order as the
// tensor-by-tensor version (and as Captum's FGSM and PGD), element by element:
//
//   moved = |g| > threshold ? x + (sign(g) * step[row]) * mask : x
//   out   = x0 + clamp(moved - x0, -radius[row], radius[row])      (L-inf projection, optional)
//   out   = clamp(out, lower, upper)
//
// every scalar converted to the tensors' dtype first (as PyTorch does for a Python scalar or a
// per-row tensor of that dtype), clamps propagating NaN. One pass instead of about a dozen
// tensor operations (each a dispatch, an allocation and a pass over the batch) per step.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstring>

namespace {

// PyTorch's clamp: NaN stays NaN; otherwise min(max(v, lo), hi), the maximum and minimum taken
// as its vectorised kernels do (the bound wins a tie).
template <typename T> inline T clamp_like_torch(T v, T lo, T hi) {
  if (std::isnan(v)) return v;
  T m = v > lo ? v : lo;
  return m < hi ? m : hi;
}

template <typename T>
void step_loop(const at::Tensor &x, const at::Tensor &x0, const at::Tensor &g, const at::Tensor *mask, const double *step,
               const double *radius, int64_t rows, double threshold, double lower, double upper, at::Tensor &out) {
  const T *px = x.const_data_ptr<T>();
  const T *px0 = x0.const_data_ptr<T>();
  const T *pg = g.const_data_ptr<T>();
  const T *pm = mask ? mask->const_data_ptr<T>() : nullptr;
  T *po = out.mutable_data_ptr<T>();
  const int64_t per_row = rows > 0 ? x.numel() / rows : 0;
  const T thr = static_cast<T>(threshold);
  const T lo = static_cast<T>(lower);
  const T hi = static_cast<T>(upper);
  for (int64_t r = 0; r < rows; ++r) {
    const T s = static_cast<T>(step[r]);
    const T rad = radius ? static_cast<T>(radius[r]) : T(0);
    const T neg_rad = -rad;
    const int64_t begin = r * per_row, end = begin + per_row;
    for (int64_t i = begin; i < end; ++i) {
      const T gi = pg[i];
      const T xi = px[i];
      T v = xi;
      if (std::abs(gi) > thr) {
        T d = static_cast<T>((T(0) < gi) - (gi < T(0))) * s;
        if (pm) d = d * pm[i];
        v = xi + d;
      }
      if (radius) {
        const T base = px0[i];
        v = base + clamp_like_torch<T>(v - base, neg_rad, rad);
      }
      po[i] = clamp_like_torch<T>(v, lo, hi);
    }
  }
}

void set_message(char *err, size_t len, const char *msg) {
  if (err && len > 0) {
    std::snprintf(err, len, "%s", msg);
  }
}

} // namespace

extern "C" {

// One attack step into `out` (see the top of this file; `out` may be `x`, the step in place:
// element i of the result reads element i of the inputs only, before it is written). `x`, `x0`,
// `g`, `out` and `mask` (may be null: every element moves) are at::Tensor pointers of the same shape and floating dtype
// (float32 or float64), contiguous, on the CPU, with `rows` rows in dimension 0; `step` holds
// the signed step of every row, `radius` the L-inf radius of every row (null: no projection).
// Returns 0; 1 when the tensors do not fit these conditions (nothing written: the caller takes
// the tensor-by-tensor way); -1 on an error, described in `err` (`len` bytes).
int attrib_attack_step(void *x, void *x0, void *g, void *mask, const double *step, const double *radius, int64_t rows,
                       double threshold, double lower, double upper, void *out, char *err, size_t len) {
  try {
    const at::Tensor &tx = *static_cast<at::Tensor *>(x);
    const at::Tensor &tx0 = *static_cast<at::Tensor *>(x0);
    const at::Tensor &tg = *static_cast<at::Tensor *>(g);
    at::Tensor &to = *static_cast<at::Tensor *>(out);
    const at::Tensor *tm = mask ? static_cast<at::Tensor *>(mask) : nullptr;
    const at::ScalarType kind = tx.scalar_type();
    if (kind != at::kFloat && kind != at::kDouble) return 1;
    for (const at::Tensor *t : {&tx, &tx0, &tg, static_cast<const at::Tensor *>(&to), tm}) {
      if (t == nullptr) continue;
      if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != kind || !t->is_contiguous() ||
          t->sizes() != tx.sizes() || t->requires_grad())
        return 1;
    }
    if (tx.dim() == 0 || tx.size(0) != rows) return 1;
    if (kind == at::kFloat)
      step_loop<float>(tx, tx0, tg, tm, step, radius, rows, threshold, lower, upper, to);
    else
      step_loop<double>(tx, tx0, tg, tm, step, radius, rows, threshold, lower, upper, to);
    return 0;
  } catch (const std::exception &e) {
    set_message(err, len, e.what());
    return -1;
  } catch (...) {
    set_message(err, len, "unknown error in the attack step");
    return -1;
  }
}
}
