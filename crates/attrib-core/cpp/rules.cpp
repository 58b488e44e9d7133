// Backward rules by graph rewriting, for attrib's DeepLIFT, guided backprop and deconvolution.
//
// A TorchScript model is loaded, its forward graph inlined (calls of submodules become their
// operations) and made functional (in-place operations replaced where alias analysis allows),
// and every non-linearity node `y = f(x, ...)` is followed by a rule node `y' = attrib::rule(x,
// y, ...)` that takes over the uses of `y`. A rule node returns `y` unchanged in the forward
// pass; its backward pass applies the method's rule:
//
// - DeepLIFT rescale (elementwise non-linearities): the batch holds the inputs in its first half
//   and the baselines in its second half (Captum's layout); with Δx = x_in − x_ref and
//   Δy = y_in − y_ref (both halves get the same values), the gradient is grad·Δy/Δx where
//   |Δx| ≥ eps and the ordinary gradient of f elsewhere (sent back through `y`'s own node).
// - DeepLIFT softmax: the rescaled gradient minus its mean over the whole tensor (Captum).
// - DeepLIFT max-pooling: Captum's rule (the cross maximum of input and reference outputs,
//   gradients routed through the pooling indices of both halves), the ordinary gradient where
//   |Δx| < eps. Where overlapping windows pick the same element, their contributions are added
//   (summation-to-delta holds).
// Mode 3 reproduces Captum's answers instead: its max_unpool keeps one of the overlapping
// windows' contributions, and its hooks lose the rule of a non-linearity fed directly by another
// hooked module (a max-pool after a ReLU gets its ordinary gradient).
// - guided backprop (ReLU): relu of the ordinary ReLU gradient; deconvolution (ReLU): relu of
//   the incoming gradient, ignoring the forward mask (Captum's GuidedBackprop / Deconvolution).
//
// For DeepLIFT, an operation that depends on the inputs and is neither a covered
// non-linearity nor linear in those inputs is an error naming the operation and where it sits
// (module scope and source line), never a silently wrong attribution.
#include <ATen/Dispatch.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/library.h>
#include <torch/script.h>

#include "load_bytes.h"
#include "rule_kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

namespace attrib_shim {
// LRP's rewrite of a prepared graph (lrp_rules.cpp).
void rewrite_lrp(const std::shared_ptr<torch::jit::Graph> &graph, double eps);
}  // namespace attrib_shim

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using torch::jit::Node;
using torch::jit::Value;

enum Rule : int64_t { RESCALE = 0, SOFTMAX = 1, GUIDED = 2, DECONV = 3, SOFTMAX_CAPTUM = 4 };
enum Mode : int { MODE_DEEPLIFT = 0, MODE_GUIDED = 1, MODE_DECONV = 2, MODE_DEEPLIFT_CAPTUM_POOL = 3, MODE_LRP = 4 };

// The fused kernels of the rules' backward passes (rule_kernels.cpp).
using attrib_kernels::maxpool_fused;
using attrib_kernels::pool2d_fast;
using attrib_kernels::rescale_fused;

char *copy_message(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

// The input half of a paired batch (inputs first, then their baselines), checked even.
int64_t half(const at::Tensor &t) {
  TORCH_CHECK(t.size(0) % 2 == 0,
              "DeepLIFT needs an even batch (inputs then baselines); the rule saw ", t.size(0), " rows");
  return t.size(0) / 2;
}

// A gradient for the whole paired batch: `in` for the input rows, zeros for the baseline rows.
// Captum's rules give both halves the same values; only the input rows' gradients are used, and
// attrib's objective (the inputs' target outputs) needs none from the baseline rows.
at::Tensor paired(const at::Tensor &in) { return at::cat({in, at::zeros_like(in)}, 0); }

bool fusable(const at::Tensor &a, const at::Tensor &b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         (a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble) && a.device().is_cpu() && b.device().is_cpu();
}

struct RuleFn : public torch::autograd::Function<RuleFn> {
  // Returns `y` itself (autograd makes it a view): no copy of the activation.
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &y, int64_t rule, double eps,
                            int64_t dim) {
    ctx->save_for_backward({x, y});
    ctx->saved_data["rule"] = rule;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["dim"] = dim;
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0];
    const auto &y = saved[1];
    const auto &g = grads[0];
    int64_t rule = ctx->saved_data["rule"].toInt();
    double eps = ctx->saved_data["eps"].toDouble();
    at::Tensor gx, gy;
    if (rule == GUIDED) {
      gy = at::relu(g);  // then through ReLU's own gradient: relu(grad · 1[x > 0])
    } else if (rule == DECONV) {
      gx = at::relu(g);
    } else {
      at::NoGradGuard no_grad;
      int64_t n = half(x);
      auto gi = g.narrow(0, 0, n);
      auto input_small = [&] { return (x.narrow(0, 0, n) - x.narrow(0, n, n)).abs() < eps; };
      if (rule == RESCALE && fusable(x, y) && fusable(x, g)) {
        auto xc = x.contiguous(), yc = y.contiguous(), gc = g.contiguous();
        gx = at::empty_like(xc);
        int64_t count = xc.numel() / 2;
        int64_t smalls = 0;
        AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "attrib_rescale", [&] {
          smalls = rescale_fused<scalar_t>(xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(),
                                           gc.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), count, eps);
        });
        // Where |Δx| < eps, the ordinary gradient through f's node; with none, no gradient goes
        // there at all (f's node then does nothing).
        if (smalls > 0) {
          gy = at::zeros_like(g);
          gy.narrow(0, 0, n).copy_(gi).masked_fill_(input_small().logical_not_(), 0.0);
        }
        return {gx, gy, at::Tensor(), at::Tensor(), at::Tensor()};
      }
      auto dx = x.narrow(0, 0, n) - x.narrow(0, n, n);
      auto dy = y.narrow(0, 0, n) - y.narrow(0, n, n);
      auto small = dx.abs() < eps;
      if (rule == RESCALE) {
        // Written straight into the input rows of zeroed full-batch gradients.
        gx = at::zeros_like(g);
        gy = at::zeros_like(g);
        auto ratio = dy.div_(dx).masked_fill_(small, 0.0);
        auto gx_in = gx.narrow(0, 0, n);
        at::mul_out(gx_in, gi, ratio);
        gy.narrow(0, 0, n).copy_(gi).masked_fill_(small.logical_not_(), 0.0);  // the ordinary gradient, through f's node
      } else {
        auto rescaled = at::where(small, at::zeros_like(gi), gi * dy / dx);
        int64_t dim = ctx->saved_data["dim"].toInt();
        auto ordinary = at::_softmax_backward_data(gi, y.narrow(0, 0, n), dim, x.scalar_type());
        auto unnorm = at::where(small, ordinary, rescaled);
        // Softmax is unchanged by a constant added to its inputs: the contributions lose their
        // mean along the softmax dimension, row by row. Captum subtracts the mean over the whole
        // batch instead, so that a row's attributions depend on the other rows.
        gx = paired(rule == SOFTMAX ? unnorm - unnorm.mean({dim}, true) : unnorm - unnorm.mean());
      }
    }
    return {gx, gy, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor rule_op(const at::Tensor &x, const at::Tensor &y, int64_t rule, double eps, int64_t dim) {
  return RuleFn::apply(x, y, rule, eps, dim);
}

// Max pooling of `x` as a 2-D or 3-D pooling (1-D pooling runs as 2-D with a unit height).
struct Pool {
  std::vector<int64_t> k, s, p, d;
  bool ceil;
  int dims;
};

std::vector<int64_t> fill(c10::IntArrayRef v, size_t n, int64_t dflt) {
  std::vector<int64_t> out(v.begin(), v.end());
  if (out.empty()) out.assign(n, dflt);
  if (out.size() == 1 && n > 1) out.assign(n, out[0]);
  return out;
}

// Max pooling of `x` (1-D as 2-D over a unit height) with its indices, as max_pool{1,2,3}d.
std::tuple<at::Tensor, at::Tensor> pool_with_indices(const at::Tensor &x, const std::vector<int64_t> &k,
                                                     const std::vector<int64_t> &s, const std::vector<int64_t> &p,
                                                     const std::vector<int64_t> &d, bool ceil, int64_t dims) {
  if (dims == 3) return at::max_pool3d_with_indices(x, k, s, p, d, ceil);
  if (dims == 2) return at::max_pool2d_with_indices(x, k, s, p, d, ceil);
  return at::max_pool1d_with_indices(x, k, s, p, d, ceil);
}

struct MaxPoolFn : public torch::autograd::Function<MaxPoolFn> {
  // Pools `x` itself (the original node is dropped) and keeps the indices for the backward.
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, c10::IntArrayRef kernel, c10::IntArrayRef stride,
                            c10::IntArrayRef padding, c10::IntArrayRef dilation, bool ceil_mode, double eps, int64_t dims,
                            bool captum) {
    size_t n = static_cast<size_t>(dims);
    auto k = fill(kernel, n, 1);
    auto st = stride.empty() ? k : fill(stride, n, 1);  // no stride: the kernel size
    auto pd = fill(padding, n, 0);
    auto dl = fill(dilation, n, 1);
    at::Tensor y, idx;
    {
      at::NoGradGuard no_grad;
      if (!pool2d_fast(x, k, st, pd, dl, ceil_mode, dims, y, idx)) std::tie(y, idx) = pool_with_indices(x, k, st, pd, dl, ceil_mode, dims);
    }
    ctx->save_for_backward({x, y, idx});
    ctx->saved_data["captum"] = captum;
    ctx->saved_data["k"] = k;
    ctx->saved_data["s"] = st;
    ctx->saved_data["p"] = pd;
    ctx->saved_data["d"] = dl;
    ctx->saved_data["ceil"] = ceil_mode;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["dims"] = dims;
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    at::NoGradGuard no_grad;
    auto saved = ctx->get_saved_variables();
    at::Tensor x = saved[0], y = saved[1], idx = saved[2], g = grads[0];
    auto k = ctx->saved_data["k"].toIntVector();
    auto s = ctx->saved_data["s"].toIntVector();
    auto p = ctx->saved_data["p"].toIntVector();
    auto d = ctx->saved_data["d"].toIntVector();
    bool ceil = ctx->saved_data["ceil"].toBool();
    double eps = ctx->saved_data["eps"].toDouble();
    int64_t dims = ctx->saved_data["dims"].toInt();
    bool captum = ctx->saved_data["captum"].toBool();
    int64_t sdims = dims == 3 ? 3 : dims == 2 ? 2 : 1;
    if (!captum && fusable(y, g) && x.scalar_type() == y.scalar_type() && x.device().is_cpu() && x.dim() > sdims &&
        x.dim() == y.dim() && x.size(0) == y.size(0) && x.size(0) % 2 == 0 && idx.sizes() == y.sizes() &&
        idx.scalar_type() == at::kLong) {
      auto xc = x.contiguous(), yc = y.contiguous(), gc = g.contiguous(), ic = idx.contiguous();
      int64_t in_size = 1, out_size = 1;
      for (int64_t i = x.dim() - sdims; i < x.dim(); ++i) {
        in_size *= x.size(i);
        out_size *= y.size(i);
      }
      int64_t planes = in_size == 0 ? 0 : xc.numel() / in_size / 2;
      auto gx = at::empty_like(xc);
      AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "attrib_maxpool_rule", [&] {
        maxpool_fused<scalar_t>(xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(), ic.const_data_ptr<int64_t>(),
                                gc.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), planes, in_size, out_size,
                                eps);
      });
      return {gx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    bool one_d = dims == 1;
    if (one_d) {  // as 2-D pooling over a unit height
      x = x.unsqueeze(-2);
      y = y.unsqueeze(-2);
      idx = idx.unsqueeze(-2);
      g = g.unsqueeze(-2);
      k.insert(k.begin(), 1);
      s.insert(s.begin(), 1);
      p.insert(p.begin(), 0);
      d.insert(d.begin(), 1);
    }
    int64_t n = half(x);
    auto x_in = x.narrow(0, 0, n), x_ref = x.narrow(0, n, n);
    auto y_in = y.narrow(0, 0, n), y_ref = y.narrow(0, n, n);
    auto gi = g.narrow(0, 0, n);
    auto delta_in = x_in - x_ref;
    auto ymax = at::max(y_in, y_ref);
    // Captum's rule: each window sends grad·(max(y, y_ref) − y_ref) to the input's arg-max and
    // grad·(y − max(y, y_ref)) to the reference's (the same gradient in both halves).
    auto to_in = gi * (ymax - y_ref);
    auto to_ref = gi * (y_in - ymax);
    sdims = dims == 3 ? 3 : 2;
    std::vector<int64_t> spatial(x.sizes().end() - sdims, x.sizes().end());
    auto idx_in = idx.narrow(0, 0, n), idx_ref = idx.narrow(0, n, n);
    auto ordinary = dims == 3 ? at::max_pool3d_with_indices_backward(gi, x_in, k, s, p, d, ceil, idx_in)
                              : at::max_pool2d_with_indices_backward(gi, x_in, k, s, p, d, ceil, idx_in);
    auto route = [&](const at::Tensor &v, const at::Tensor &i) {
      if (captum) {
        // Captum routes with max_unpool, which writes: where overlapping windows pick the same
        // element, one window's value replaces the others' (on contiguous tensors, the last).
        auto vc = v.contiguous();
        auto ic = i.contiguous();
        return dims == 3 ? at::max_unpool3d(vc, ic, spatial, s, p) : at::max_unpool2d(vc, ic, spatial);
      }
      // Every window's contribution reaches its element: summation-to-delta holds with
      // overlapping windows too.
      auto plane = x_in.flatten(x.dim() - sdims);
      return at::zeros_like(plane).scatter_add_(-1, i.flatten(x.dim() - sdims), v.flatten(x.dim() - sdims)).view(x_in.sizes());
    };
    auto routed = route(to_in, idx_in) + route(to_ref, idx_ref);
    auto gx = paired(at::where(delta_in.abs() < eps, ordinary, routed / delta_in));
    if (one_d) gx = gx.squeeze(-2);
    return {gx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor maxpool_op(const at::Tensor &x, c10::IntArrayRef kernel, c10::IntArrayRef stride, c10::IntArrayRef padding,
                      c10::IntArrayRef dilation, bool ceil_mode, double eps, int64_t dims, bool captum) {
  return MaxPoolFn::apply(x, kernel, stride, padding, dilation, ceil_mode, eps, dims, captum);
}

TORCH_LIBRARY(attrib, m) {
  m.def("rule(Tensor x, Tensor y, int rule, float eps, int dim) -> Tensor");
  m.def("maxpool_rule(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode, float eps, int dims, bool captum) -> Tensor");
}

TORCH_LIBRARY_IMPL(attrib, CompositeImplicitAutograd, m) {
  m.impl("rule", rule_op);
  m.impl("maxpool_rule", maxpool_op);
}

// --- graph rewriting ---

const std::unordered_set<std::string> &elementwise() {
  static const std::unordered_set<std::string> s = {
      "aten::relu",     "aten::leaky_relu", "aten::elu",       "aten::selu",      "aten::celu",
      "aten::gelu",     "aten::silu",       "aten::sigmoid",   "aten::tanh",      "aten::softplus",
      "aten::hardtanh", "aten::relu6",      "aten::hardsigmoid", "aten::hardswish", "aten::mish"};
  return s;
}

// Operations linear in their input-dependent tensor arguments (or not differentiable in them):
// they need no rule.
const std::unordered_set<std::string> &linear() {
  static const std::unordered_set<std::string> s = {
      "aten::_convolution", "aten::convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d",
      "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d", "aten::linear",
      "aten::batch_norm", "aten::add", "aten::sub", "aten::rsub", "aten::neg", "aten::cat", "aten::stack",
      "aten::view", "aten::reshape", "aten::flatten", "aten::permute", "aten::transpose", "aten::t",
      "aten::contiguous", "aten::squeeze", "aten::unsqueeze", "aten::select", "aten::slice", "aten::narrow",
      "aten::index_select", "aten::expand", "aten::expand_as", "aten::repeat", "aten::chunk", "aten::split",
      "aten::unbind", "aten::unsafe_chunk", "aten::unsafe_split", "aten::split_with_sizes", "aten::avg_pool1d",
      "aten::avg_pool2d", "aten::avg_pool3d", "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d",
      "aten::adaptive_avg_pool3d", "aten::mean", "aten::sum", "aten::dropout", "aten::feature_dropout",
      "aten::alpha_dropout", "aten::to", "aten::type_as", "aten::detach", "aten::clone", "aten::pad",
      "aten::constant_pad_nd", "aten::zero_pad2d", "aten::upsample_nearest1d", "aten::upsample_nearest2d",
      "aten::upsample_nearest3d", "aten::upsample_bilinear2d", "aten::upsample_linear1d", "aten::pixel_shuffle",
      "aten::pixel_unshuffle", "aten::size", "aten::dim", "aten::numel", "aten::Int", "aten::Float",
      "aten::len", "aten::__getitem__", "aten::embedding", "aten::zeros_like", "aten::ones_like",
      "aten::empty_like", "aten::full_like", "aten::identity", "aten::alias", "aten::view_as", "aten::reshape_as",
      "aten::movedim", "aten::swapaxes", "aten::flip", "aten::roll", "aten::index", "aten::gather",
      "aten::masked_fill", "aten::where", "aten::trace", "aten::diagonal", "aten::tensor_split", "aten::unflatten"};
  return s;
}

// Products: linear when at most one operand depends on the inputs.
const std::unordered_set<std::string> &products() {
  static const std::unordered_set<std::string> s = {"aten::mul", "aten::matmul", "aten::mm", "aten::bmm",
                                                     "aten::addmm", "aten::einsum", "aten::div"};
  return s;
}

std::string where_is(Node *n) {
  std::ostringstream os;
  if (auto scope = n->scope()) {
    auto names = scope->namesFromRoot();
    if (!names.empty()) os << " in " << names;
  }
  if (auto flc = n->sourceRange().file_line_col()) {
    os << " at " << std::get<0>(*flc) << ":" << std::get<1>(*flc);
  }
  auto text = os.str();
  return text.empty() ? " (no scope or source line recorded)" : text;
}

bool is_tensor(Value *v) { return v->type()->kind() == c10::TypeKind::TensorType; }

bool x_is_rule(Value *v) {
  auto k = v->node()->kind();
  return k == c10::Symbol::fromQualString("attrib::rule") || k == c10::Symbol::fromQualString("attrib::maxpool_rule");
}

// Rewrite `graph` for `mode`. Throws with a message naming an uncovered operation.
void rewrite(const std::shared_ptr<torch::jit::Graph> &graph, int mode, double eps) {
  torch::jit::Inline(*graph);
  // The module is in evaluation mode: scripted modules test `self.training` at run time (batch
  // norm's `num_batches_tracked.add_(1)` branch), and alias analysis then keeps in-place
  // operations nearby (a scripted ResNet's `out += identity` and in-place ReLUs) from being made
  // functional. Fold those branches first.
  {
    std::vector<Value *> training;
    for (Node *n : graph->nodes())
      if (n->kind() == c10::prim::GetAttr && n->s(c10::attr::name) == "training") training.push_back(n->output());
    if (!training.empty()) {
      torch::jit::WithInsertPoint guard(graph->block()->nodes().front());
      Value *no = graph->insertConstant(false);
      for (Value *v : training) v->replaceAllUsesWith(no);
      auto g = graph;  // ConstantPropagation takes a non-const reference
      torch::jit::ConstantPropagation(g);
    }
  }
  torch::jit::RemoveTensorMutation(graph);
  torch::jit::InplaceToFunctionalActivation(graph);
  torch::jit::EliminateDeadCode(graph);
  if (mode == MODE_LRP) return attrib_shim::rewrite_lrp(graph, eps);  // lrp_rules.cpp
  std::unordered_set<Value *> dependent;
  auto inputs = graph->inputs();
  for (size_t i = 1; i < inputs.size(); ++i) dependent.insert(inputs[i]);
  std::vector<Node *> nodes;
  for (Node *n : graph->nodes()) nodes.push_back(n);
  for (Node *n : nodes) {
    std::vector<Value *> dep_inputs;
    for (Value *v : n->inputs())
      if (dependent.count(v) && is_tensor(v)) dep_inputs.push_back(v);
    bool any_dep = false;
    for (Value *v : n->inputs()) any_dep = any_dep || dependent.count(v);
    if (any_dep)
      for (Value *o : n->outputs()) dependent.insert(o);
    if (dep_inputs.empty()) continue;
    std::string kind = n->kind().toQualString();
    if (!n->blocks().empty())
      throw std::runtime_error("control flow (" + kind + ") depends on the inputs" + where_is(n) +
                               "; the graph rules need a traced model without data-dependent branches");
    if (kind == "aten::relu_" || kind == "aten::relu6_" || kind == "aten::hardtanh_")
      throw std::runtime_error("in-place " + kind + where_is(n) +
                               " could not be made functional, so its rule cannot be applied (export the model with "
                               "inplace=False activations, or trace it)");
    bool relu = kind == "aten::relu";
    bool deeplift = mode == MODE_DEEPLIFT || mode == MODE_DEEPLIFT_CAPTUM_POOL;
    int64_t rule = -1;
    bool pool = false;
    int64_t dim = 0;
    if (deeplift && elementwise().count(kind)) {
      rule = RESCALE;
    } else if (deeplift && (kind == "aten::softmax" || kind == "aten::log_softmax")) {
      rule = mode == MODE_DEEPLIFT_CAPTUM_POOL ? SOFTMAX_CAPTUM : SOFTMAX;
      auto d = torch::jit::toIValue(n->input(1));
      if (!d || !d->isInt()) throw std::runtime_error(kind + " with a non-constant dim" + where_is(n));
      dim = d->toInt();
    } else if (deeplift && (kind == "aten::max_pool1d" || kind == "aten::max_pool2d" || kind == "aten::max_pool3d")) {
      pool = true;
    } else if (!deeplift && relu) {
      rule = mode == MODE_GUIDED ? GUIDED : DECONV;
    }
    // Captum's module hooks lose the rule of a non-linearity whose input is another hooked
    // module's output (ReLU -> MaxPool): the earlier module's hook keeps the gradient from before
    // the later one's rule. Reproduced on request.
    bool fed_by_rule = x_is_rule(n->input(0));
    if (mode == MODE_DEEPLIFT_CAPTUM_POOL && fed_by_rule && (rule >= 0 || pool)) continue;
    if (rule < 0 && !pool) {
      if (!deeplift) continue;  // guided backprop and deconvolution change ReLUs only
      if (kind.rfind("prim::", 0) == 0 || linear().count(kind)) continue;
      if (products().count(kind) && dep_inputs.size() <= 1) {
        if (kind != "aten::div" || dependent.count(n->input(0))) continue;
      }
      std::string why = products().count(kind) ? " multiplies two input-dependent tensors" : " is not covered by the DeepLIFT rules";
      throw std::runtime_error("operation " + kind + why + where_is(n) +
                               " (covered: relu, leaky_relu, elu, gelu, silu, sigmoid, tanh, softplus, hardtanh, "
                               "softmax, log_softmax, max_pool1d/2d/3d, and linear operations)");
    }
    Value *x = n->input(0);
    Value *y = n->output(0);
    torch::jit::WithInsertPoint guard(n->next());
    Node *r;
    if (pool) {
      int64_t dims = kind == "aten::max_pool1d" ? 1 : kind == "aten::max_pool2d" ? 2 : 3;
      // The rule node pools itself (keeping the indices); the original node is dropped below.
      r = graph->create(c10::Symbol::fromQualString("attrib::maxpool_rule"),
                        {x, n->input(1), n->input(2), n->input(3), n->input(4), n->input(5),
                         graph->insertConstant(eps), graph->insertConstant(dims),
                         graph->insertConstant(mode == MODE_DEEPLIFT_CAPTUM_POOL)},
                        1);
    } else {
      r = graph->create(c10::Symbol::fromQualString("attrib::rule"),
                        {x, y, graph->insertConstant(rule), graph->insertConstant(eps), graph->insertConstant(dim)}, 1);
    }
    r->output()->setType(y->type());
    graph->insertNode(r);
    y->replaceAllUsesWith(r->output());
    if (pool) {
      dependent.erase(y);
      n->destroy();
    } else {
      r->replaceInput(1, y);
    }
    dependent.insert(r->output());
  }
}

}  // namespace

namespace attrib_shim {

// The rewrite of `graph` for `mode` and `eps` (see attrib_rules_load), for graphs made
// elsewhere: layer_rules.cpp applies it to a copy of forward with a layer exposed.
void rewrite_rules(const std::shared_ptr<torch::jit::Graph> &graph, int mode, double eps) { rewrite(graph, mode, eps); }

// For lrp_rules.cpp: where a node is, and which operations need no rule.
std::string where_is_node(Node *n) { return where_is(n); }
bool linear_op(const std::string &kind) { return linear().count(kind) > 0; }
bool product_op(const std::string &kind) { return products().count(kind) > 0; }

}  // namespace attrib_shim

extern "C" {

// Load the TorchScript file whose `len` bytes are at `data` on `device` (-1: CPU, k >= 0: CUDA k)
// with its forward graph rewritten for
// `mode` (0: DeepLIFT, 3: DeepLIFT as Captum computes it, 1: guided backprop,
// 2: deconvolution, 4: LRP with the epsilon rule; `eps`: DeepLIFT's threshold on
// |Δx|, or LRP's epsilon). Returns a module for attrib_frozen_forward / attrib_frozen_free, or null with `*err`.
// `dtype` >= 0 converts the floating-point parameters to that scalar type (as `model.to(dtype)`).
void *attrib_rules_load(const char *data, size_t len, int device, int mode, double eps, int dtype, char **err) {
  try {
    torch::jit::Module module = attrib_shim::load_bytes(data, len, device);
    module.eval();
    if (dtype >= 0) module.to(static_cast<at::ScalarType>(dtype));
    auto &fn = torch::jit::toGraphFunction(module.get_method("forward").function());
    rewrite(fn.graph(), mode, eps);
    return new torch::jit::Module(std::move(module));
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
    return nullptr;
  }
}
}
