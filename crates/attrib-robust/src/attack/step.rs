//! The one-pass signed-gradient step of FGSM and PGD (C++, `attack_step.cpp`).

use super::bounds::Bounds;
use attrib_core::{AttribError, Result, TorchResultExt};
use tch::{Device, Tensor};

/// What [`fused_step`] needs besides the tensors: the signed step and (L∞ projection) the
/// radius of every row, Captum's zero threshold and the bounds.
pub(crate) struct StepRule<'a> {
    /// Signed step per row: `α` untargeted, `−α` targeted.
    pub steps: &'a [f64],
    /// L∞ radius per row (`None`: no projection).
    pub radius: Option<&'a [f64]>,
    /// Gradients of at most this magnitude do not move their element.
    pub threshold: f64,
    /// Bounds applied last.
    pub bounds: Bounds,
}

mod kernel {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        // crates/attrib-core/cpp/attack_step.cpp (linked into attrib-core).
        pub fn attrib_attack_step(
            x: *mut c_void,
            x0: *mut c_void,
            g: *mut c_void,
            mask: *mut c_void,
            step: *const f64,
            radius: *const f64,
            rows: i64,
            threshold: f64,
            lower: f64,
            upper: f64,
            out: *mut c_void,
            err: *mut c_char,
            len: usize,
        ) -> c_int;
    }
}

/// Whether [`fused_step`] applies to inputs like `x`: a contiguous float32/float64 tensor with
/// rows, on the CPU.
pub(crate) fn fusable(x: &Tensor) -> bool {
    x.device() == Device::Cpu && matches!(x.kind(), tch::Kind::Float | tch::Kind::Double) && x.dim() > 0 && x.is_contiguous()
}

/// One signed-gradient step of every element of `x` in one pass over the elements (C++,
/// `attack_step.cpp`): `where(|g| > threshold, x + step · sign(g) · mask, x)`, then (with a
/// radius) `x0 + clamp(· − x0, −r, r)`, then the bounds — the float operations of
/// [`crate::fgsm::step`], the L∞ projection and [`Bounds::apply`] in the same order, so the
/// result is the same to the bit up to the sign of zeros. `mask`, when given, has `x`'s shape.
/// `None` when the tensors do not fit ([`fusable`]; all of one shape and dtype): the caller
/// takes the tensor-by-tensor way. `in_place`: the result is written into `x` (which the
/// caller owns and no longer needs: every element depends on itself alone) instead of a new
/// tensor, and `x` is returned.
pub(crate) fn fused_step(x: &Tensor, x0: &Tensor, g: &Tensor, mask: Option<&Tensor>, rule: &StepRule, in_place: bool) -> Result<Option<Tensor>> {
    let rows = x.size().first().copied().unwrap_or(0);
    if !fusable(x) || rule.steps.len() as i64 != rows || rule.radius.is_some_and(|r| r.len() as i64 != rows) {
        return Ok(None);
    }
    let out = if in_place { x.shallow_clone() } else { Tensor::f_empty(x.size(), (x.kind(), x.device())).ctx("allocating an attack step")? };
    let ptr = |t: &Tensor| t.as_ptr() as *mut std::os::raw::c_void;
    let mut err = [0 as std::os::raw::c_char; 512];
    // SAFETY: every pointer is a live at::Tensor owned here for the whole call; the C++ side
    // checks shapes, dtypes, devices and contiguity before touching any data (returning 1
    // otherwise), reads `steps`/`radius` for `rows` rows (lengths checked above), writes only into
    // `out` (which may be `x`: element `i` of the result reads element `i` of the inputs only,
    // before writing it), and catches every exception.
    let rc = unsafe {
        kernel::attrib_attack_step(
            ptr(x),
            ptr(x0),
            ptr(g),
            mask.map_or(std::ptr::null_mut(), ptr),
            rule.steps.as_ptr(),
            rule.radius.map_or(std::ptr::null(), <[f64]>::as_ptr),
            rows,
            rule.threshold,
            rule.bounds.lower,
            rule.bounds.upper,
            ptr(&out),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    match rc {
        0 => Ok(Some(out)),
        1 => Ok(None),
        _ => {
            // SAFETY: the C++ side wrote a NUL-terminated message into `err` (zeroed before).
            let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
            Err(AttribError::Internal(format!("taking an attack step: {msg}")))
        }
    }
}
