// Layer-wise relevance propagation with the epsilon rule (Bach et al. 2015; Captum's LRP with its
// default rules), as backward rules on the TorchScript graph that rules.cpp prepares (inlined,
// functional).
//
// In gradient form, the relevance of every tensor t of the network is R_t = t ⊙ G_t, where G is
// the gradient of the target output with two changes, made by rule nodes that return their
// argument unchanged in the forward pass:
//
// - after each layer Captum gives the epsilon rule (linear, convolution, batch norm, max, average
//   and adaptive average pooling; here also matrix products with a constant operand), an
//   epsilon node on the layer's output z multiplies the incoming gradient by z / (z + ε·sign(z))
//   with sign(0) = 1 (Captum's stabiliser), 0 where z = 0;
// - after each non-linearity Captum passes relevance through unchanged (relu, tanh; dropout is
//   the identity in evaluation), a pass node on a = φ(z) sends back grad · a / z (0 where z = 0)
//   to z instead of grad · φ'(z), so that R_z = R_a.
//
// The attribution is then input ⊙ G, equal to Captum's relevance (its hooks divide by
// z + ε·sign(z) at a layer's output and multiply by the layer's input at its input). Other
// operations that are linear in the inputs (reshapes, concatenations, additions, sums, products
// with a constant, dropout) keep their ordinary gradient; any other operation that depends on the
// inputs is an error naming it and where it is.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/library.h>
#include <torch/script.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

namespace attrib_shim {
std::string where_is_node(torch::jit::Node *n);
bool linear_op(const std::string &kind);
bool product_op(const std::string &kind);
}  // namespace attrib_shim

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using torch::jit::Node;
using torch::jit::Value;

// Contiguous float32/float64 CPU tensors of one shape: the rules' backward runs as one loop.
bool fusable(const at::Tensor &a, const at::Tensor &b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         (a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble) && a.device().is_cpu() &&
         b.device().is_cpu();
}

// out = g · f(u, v) elementwise over contiguous copies, in parallel (the same arithmetic as the
// ATen formulation below it, one pass and no temporaries).
template <typename T, typename F>
at::Tensor fused(const at::Tensor &g, const at::Tensor &u, const at::Tensor &v, F f) {
  auto gc = g.contiguous(), uc = u.contiguous(), vc = v.contiguous();
  auto out = at::empty_like(gc);
  const T *gp = gc.const_data_ptr<T>(), *up = uc.const_data_ptr<T>(), *vp = vc.const_data_ptr<T>();
  T *op = out.mutable_data_ptr<T>();
  at::parallel_for(0, gc.numel(), at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) op[i] = gp[i] * f(up[i], vp[i]);
  });
  return out;
}

// The epsilon rule at a layer's output z: identity forward, grad · z / (z + ε·sign(z)) backward.
struct EpsilonFn : public torch::autograd::Function<EpsilonFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &z, double eps) {
    ctx->save_for_backward({z});
    ctx->saved_data["eps"] = eps;
    return z;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    at::NoGradGuard no_grad;
    auto z = ctx->get_saved_variables()[0];
    double eps = ctx->saved_data["eps"].toDouble();
    const auto &g = grads[0];
    if (fusable(g, z)) {
      at::Tensor out;
      AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "attrib_lrp_epsilon", [&] {
        const scalar_t e = static_cast<scalar_t>(eps);
        out = fused<scalar_t>(g, z, z, [e](scalar_t zi, scalar_t) {
          return zi == scalar_t(0) ? scalar_t(0) : zi / (zi + (zi >= scalar_t(0) ? e : -e));
        });
      });
      return {out, at::Tensor()};
    }
    // Captum: sign(z) with the sign of 0 taken as +1.
    auto den = z + at::where(z >= 0, at::scalar_tensor(eps, z.options()), at::scalar_tensor(-eps, z.options()));
    // Where z = 0 the relevance is 0 (also when ε underflows in half precision).
    auto factor = (z / den).masked_fill_(z == 0, 0.0);
    return {grads[0] * factor, at::Tensor()};
  }
};

// A non-linearity a = φ(z) that passes relevance through unchanged: identity forward on a,
// grad · a / z (0 where z = 0) sent to z, nothing through φ's own node.
struct PassFn : public torch::autograd::Function<PassFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &z, const at::Tensor &a) {
    ctx->save_for_backward({z, a});
    return a;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    at::NoGradGuard no_grad;
    auto saved = ctx->get_saved_variables();
    const auto &z = saved[0];
    const auto &a = saved[1];
    if (fusable(grads[0], z) && fusable(z, a)) {
      at::Tensor out;
      AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "attrib_lrp_pass", [&] {
        out = fused<scalar_t>(grads[0], z, a, [](scalar_t zi, scalar_t ai) { return zi == scalar_t(0) ? scalar_t(0) : ai / zi; });
      });
      return {out, at::Tensor()};
    }
    auto ratio = (a / z).masked_fill_(z == 0, 0.0);
    return {grads[0] * ratio, at::Tensor()};
  }
};

at::Tensor epsilon_op(const at::Tensor &z, double eps) { return EpsilonFn::apply(z, eps); }
at::Tensor pass_op(const at::Tensor &z, const at::Tensor &a) { return PassFn::apply(z, a); }

TORCH_LIBRARY_FRAGMENT(attrib, m) {
  m.def("lrp_epsilon(Tensor z, float eps) -> Tensor");
  m.def("lrp_pass(Tensor z, Tensor a) -> Tensor");
}

TORCH_LIBRARY_IMPL(attrib, CompositeImplicitAutograd, m) {
  m.impl("lrp_epsilon", epsilon_op);
  m.impl("lrp_pass", pass_op);
}

// Layers that get the epsilon rule: Captum's defaults (Linear, Conv2d, BatchNorm2d, MaxPool1-3d,
// AvgPool2d, AdaptiveAvgPool2d) as the operations a traced or scripted model has, in every
// dimension, and matrix products with one input-dependent operand (a functional linear layer).
const std::unordered_set<std::string> &epsilon_layers() {
  static const std::unordered_set<std::string> s = {
      "aten::linear", "aten::_convolution", "aten::convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d",
      "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d", "aten::batch_norm",
      "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d", "aten::avg_pool1d", "aten::avg_pool2d",
      "aten::avg_pool3d", "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d",
      "aten::matmul", "aten::mm", "aten::addmm", "aten::bmm"};
  return s;
}

// Non-linearities through which relevance passes unchanged (Captum's ReLU and Tanh).
const std::unordered_set<std::string> &pass_through() {
  static const std::unordered_set<std::string> s = {"aten::relu", "aten::tanh"};
  return s;
}

bool is_tensor(Value *v) { return v->type()->kind() == c10::TypeKind::TensorType; }

const char *COVERED =
    " (covered: linear, convolution, batch_norm, max/avg/adaptive-avg pooling and matrix products with a constant "
    "operand, with the epsilon rule; relu and tanh, passing relevance through; and operations linear in the inputs)";

}  // namespace

namespace attrib_shim {

// Rewrite a prepared (inlined, functional) graph for LRP with the epsilon rule `eps`. Throws with
// a message naming an operation the rules do not cover and where it is.
void rewrite_lrp(const std::shared_ptr<torch::jit::Graph> &graph, double eps) {
  std::unordered_set<Value *> dependent;
  auto inputs = graph->inputs();
  for (size_t i = 1; i < inputs.size(); ++i) dependent.insert(inputs[i]);
  std::vector<Node *> nodes;
  for (Node *n : graph->nodes()) nodes.push_back(n);
  for (Node *n : nodes) {
    size_t dep_tensors = 0;
    bool any_dep = false;
    for (Value *v : n->inputs()) {
      bool dep = dependent.count(v) > 0;
      any_dep = any_dep || dep;
      dep_tensors += dep && is_tensor(v);
    }
    if (any_dep)
      for (Value *o : n->outputs()) dependent.insert(o);
    if (dep_tensors == 0) continue;
    std::string kind = n->kind().toQualString();
    if (!n->blocks().empty())
      throw std::runtime_error("control flow (" + kind + ") depends on the inputs" + where_is_node(n) +
                               "; the graph rules need a traced model without data-dependent branches");
    bool epsilon = epsilon_layers().count(kind) > 0;
    bool pass = pass_through().count(kind) > 0;
    if (epsilon && dep_tensors > 1)
      throw std::runtime_error("operation " + kind + " multiplies two input-dependent tensors" + where_is_node(n) +
                               ", which LRP's rules do not cover" + COVERED);
    if (!epsilon && !pass) {
      if (kind.rfind("prim::", 0) == 0 || linear_op(kind)) continue;
      if (product_op(kind) && dep_tensors == 1 && (kind != "aten::div" || dependent.count(n->input(0)))) continue;
      std::string why = product_op(kind) ? " multiplies two input-dependent tensors" : " is not covered by the LRP rules";
      throw std::runtime_error("operation " + kind + why + where_is_node(n) + COVERED);
    }
    Value *y = n->output(0);
    torch::jit::WithInsertPoint guard(n->next());
    Node *r;
    if (epsilon) {
      r = graph->create(c10::Symbol::fromQualString("attrib::lrp_epsilon"), {y, graph->insertConstant(eps)}, 1);
    } else {
      r = graph->create(c10::Symbol::fromQualString("attrib::lrp_pass"), {n->input(0), y}, 1);
    }
    r->output()->setType(y->type());
    graph->insertNode(r);
    y->replaceAllUsesWith(r->output());
    r->replaceInput(epsilon ? 0 : 1, y);  // the rule node itself keeps reading y
    dependent.insert(r->output());
  }
}

}  // namespace attrib_shim
