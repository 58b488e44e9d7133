//! Model inputs: one or several tensors that share the batch dimension, plus additional
//! forward arguments that reach the model but are not attributed.

use crate::error::{AttribError, Result, TorchResultExt};
use tch::{Kind, Tensor};

/// A forward argument that is passed to the model after the attributed inputs but is never
/// attributed (Captum's `additional_forward_args`).
///
/// When attrib expands the batch (integration steps, perturbations, noisy copies), tensor
/// arguments are repeated along dimension 0 together with the rows they belong to; scalars pass
/// through unchanged.
#[derive(Debug)]
pub enum ForwardArg {
    /// A tensor with the batch in dimension 0.
    Tensor(Tensor),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean flag.
    Bool(bool),
}

impl ForwardArg {
    /// A copy sharing storage with `self` (tensors are reference counted).
    pub fn shallow_clone(&self) -> ForwardArg {
        match self {
            ForwardArg::Tensor(t) => ForwardArg::Tensor(t.shallow_clone()),
            ForwardArg::Int(v) => ForwardArg::Int(*v),
            ForwardArg::Float(v) => ForwardArg::Float(*v),
            ForwardArg::Bool(v) => ForwardArg::Bool(*v),
        }
    }
}

/// The inputs of one attribution call: `tensors[k]` is the k-th model input, each with the batch
/// in dimension 0, and `extra` the additional forward arguments.
#[derive(Debug)]
pub struct Inputs {
    tensors: Vec<Tensor>,
    extra: Vec<ForwardArg>,
    /// The rows are this many stacked copies of a batch (see [`Inputs::stacked_copies`]).
    copies: i64,
}

impl Inputs {
    /// A single input tensor (batch first).
    pub fn new(tensor: Tensor) -> Inputs {
        Inputs { tensors: vec![tensor], extra: Vec::new(), copies: 1 }
    }

    /// Several input tensors, in the order the model's `forward` takes them.
    pub fn multi(tensors: Vec<Tensor>) -> Inputs {
        Inputs { tensors, extra: Vec::new(), copies: 1 }
    }

    /// Add forward arguments that the model receives after the inputs and that are not attributed.
    pub fn with_extra(mut self, extra: Vec<ForwardArg>) -> Inputs {
        self.extra = extra;
        self
    }

    /// Declare that the rows are `copies` stacked copies of a batch of `rows / copies` samples,
    /// copy-major (row `s·N + i` is copy `s` of sample `i`), as NoiseTunnel hands noisy copies to
    /// the method it wraps. Methods then tile per-row baselines and feature masks of the
    /// batch's `N` rows over the copies ([`crate::baseline::tile_copies`]); without it, baselines
    /// and masks broadcast by NumPy's rules only. The row count must be a multiple of `copies`
    /// (checked by [`Inputs::validate`]).
    pub fn stacked_copies(mut self, copies: i64) -> Inputs {
        self.copies = copies;
        self
    }

    /// How many stacked copies of a batch the rows are (1 unless [`Inputs::stacked_copies`]
    /// said otherwise).
    pub fn copies(&self) -> i64 {
        self.copies
    }

    /// The attributed input tensors.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The additional forward arguments.
    pub fn extra(&self) -> &[ForwardArg] {
        &self.extra
    }

    /// Number of attributed input tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there is no input tensor at all.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Batch size shared by all inputs, after checking that there is at least one input, that
    /// every input has a batch dimension with at least one row, that all agree, that the dtype is
    /// floating point and that every value is finite. Tensor extra arguments must share the batch.
    pub fn validate(&self) -> Result<i64> {
        self.validate_kinds(false)
    }

    /// [`Inputs::validate`], except that int64 and int32 inputs are accepted too: token ids for
    /// the layer methods that attribute to a layer computed from them (an embedding's output or
    /// any later layer; [`crate::tokens`] checks them against the model's embeddings).
    pub fn validate_token_ids(&self) -> Result<i64> {
        self.validate_kinds(true)
    }

    fn validate_kinds(&self, token_ids: bool) -> Result<i64> {
        let first = self.tensors.first().ok_or_else(|| {
            AttribError::InputShape("no input tensor was given; pass at least one".into())
        })?;
        if first.dim() == 0 {
            return Err(AttribError::InputShape(
                "input 0 is a scalar; inputs need a batch dimension first (use shape [1, ...] for one example)".into(),
            ));
        }
        let n = first.size()[0];
        for (i, t) in self.tensors.iter().enumerate() {
            let size = t.size();
            if size.is_empty() {
                return Err(AttribError::InputShape(format!(
                    "input {i} is a scalar; inputs need a batch dimension first"
                )));
            }
            if size[0] == 0 {
                return Err(AttribError::EmptyBatch { input: i, rows: 0 });
            }
            if size[0] != n {
                return Err(AttribError::InputShape(format!(
                    "input {i} has {} rows but input 0 has {n}; all inputs share dimension 0 (the batch)",
                    size[0]
                )));
            }
            let ids = matches!(t.kind(), Kind::Int64 | Kind::Int);
            if !t.is_floating_point() && !(token_ids && ids) {
                return Err(AttribError::InputShape(if ids {
                    format!(
                        "input {i} has dtype {:?} (token ids?); this method attributes to the model's inputs, which needs floating-point values. \
                         Only layer methods at an embedding layer (or a later layer) accept integer token ids, \
                         e.g. layer-integrated-gradients with layer = the embedding's submodule path",
                        t.kind()
                    )
                } else {
                    format!(
                        "input {i} has dtype {:?}; attributions need floating-point inputs (convert with `.to_kind(Kind::Float)`){}",
                        t.kind(),
                        if token_ids { " or int64 token ids" } else { "" }
                    )
                }));
            }
            check_finite(t, &format!("input {i}"))?;
        }
        if self.copies < 1 || n % self.copies != 0 {
            return Err(AttribError::InputShape(format!(
                "the inputs are declared as {} stacked copies, but their {n} rows are not a whole number of copies",
                self.copies
            )));
        }
        for (i, arg) in self.extra.iter().enumerate() {
            if let ForwardArg::Tensor(t) = arg {
                if t.dim() == 0 || t.size()[0] != n {
                    return Err(AttribError::InputShape(format!(
                        "additional forward argument {i} has shape {:?}; tensor arguments must have the batch ({n} rows) in dimension 0",
                        t.size()
                    )));
                }
            }
        }
        Ok(n)
    }

    /// Shapes of the inputs, for messages.
    pub fn shapes(&self) -> Vec<Vec<i64>> {
        self.tensors.iter().map(|t| t.size()).collect()
    }
}

/// Error with a count when `t` holds NaN or infinity. One host synchronisation (none for
/// contiguous `f32`/`f64` CPU tensors, which are read in place: for the inputs of a typical
/// call that is a few microseconds instead of a hundred for the three tensor operations).
pub fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    if !t.is_floating_point() {
        return Ok(());
    }
    let count = match host_non_finite(t) {
        Some(c) => c,
        None => {
            let bad = t
                .f_isfinite()
                .and_then(|f| f.f_logical_not())
                .and_then(|f| f.f_sum(Kind::Int64))
                .ctx("checking for NaN/inf")?;
            i64::try_from(&bad).ctx("reading the NaN/inf count")?
        }
    };
    if count > 0 {
        return Err(AttribError::NonFinite { what: what.to_string(), count });
    }
    Ok(())
}

/// The number of NaN/inf elements of a contiguous `f32` or `f64` CPU tensor, counted in place;
/// `None` for any other tensor.
fn host_non_finite(t: &Tensor) -> Option<i64> {
    if t.device() != tch::Device::Cpu || !t.is_contiguous() {
        return None;
    }
    let len = t.numel();
    if len == 0 {
        return Some(0);
    }
    let ptr = t.data_ptr();
    // SAFETY: a contiguous CPU tensor of `len` elements of the matched dtype starts at
    // `data_ptr()` (the storage offset included); the slice only reads, while `t` is borrowed.
    let count = match t.kind() {
        Kind::Float => unsafe { std::slice::from_raw_parts(ptr as *const f32, len) }.iter().filter(|v| !v.is_finite()).count(),
        Kind::Double => unsafe { std::slice::from_raw_parts(ptr as *const f64, len) }.iter().filter(|v| !v.is_finite()).count(),
        _ => return None,
    };
    Some(count as i64)
}

/// Format shapes as `[2, 3], [2, 5]` for messages.
pub fn format_shapes(tensors: &[Tensor]) -> String {
    tensors.iter().map(|t| format!("{:?}", t.size())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The in-place count agrees with the tensor operations, for views with an offset, other
    /// dtypes and non-contiguous tensors (which take the tensor path).
    #[test]
    fn non_finite_counts_agree_with_tensor_ops() {
        let by_ops = |t: &Tensor| t.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
        for kind in [Kind::Float, Kind::Double, Kind::Half] {
            let t = Tensor::randn([6, 7], (kind, Device::Cpu));
            let _ = t.get(1).get(3).fill_(f64::NAN);
            let _ = t.get(4).get(0).fill_(f64::NEG_INFINITY);
            let _ = t.get(5).get(6).fill_(f64::INFINITY);
            // The whole tensor, rows 2.. (an offset view: one NaN less), a transposed view.
            for view in [t.shallow_clone(), t.narrow(0, 2, 4), t.transpose(0, 1)] {
                let expected = by_ops(&view);
                let host = host_non_finite(&view);
                match (kind, view.is_contiguous()) {
                    (Kind::Half, _) | (_, false) => assert_eq!(host, None),
                    _ => assert_eq!(host, Some(expected)),
                }
                let err = check_finite(&view, "x").unwrap_err();
                assert!(matches!(err, AttribError::NonFinite { count, .. } if count == expected), "{err}");
            }
        }
        assert!(check_finite(&Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)), "x").is_ok());
        assert!(check_finite(&Tensor::ones([2, 3], (Kind::Float, Device::Cpu)), "x").is_ok());
    }
}
