//! Reduced-precision mode: the model's forward passes in an autocast region (PyTorch's
//! `torch.autocast`), attributions kept in float32.
//!
//! With [`Precision::Bf16`] or [`Precision::Fp16`] the shared tensor layer runs every model call
//! inside an [`Autocast`] region on the model's device: libtorch casts the inputs of the
//! operations that gain from it (convolutions, matrix products) to the lower precision and
//! keeps the others (reductions, softmax, losses) in float32, exactly as `torch.autocast` does.
//! The inputs stay float32, so gradients with respect to them come back in float32, and target
//! outputs are converted to float32 before any method sees them: attributions are accumulated in
//! float32. The cost in accuracy shows in the convergence delta, which methods still report.
//! Whether it is faster depends on the hardware (bfloat16 matrix units: recent GPUs, CPUs with
//! AMX or AVX512-BF16); it is opt-in.

use crate::error::{AttribError, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

/// The precision of the model's forward passes (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Float32 throughout (the default): no autocast region.
    #[default]
    Fp32,
    /// Autocast to bfloat16 (8 exponent bits: the range of float32, about 3 significant digits).
    Bf16,
    /// Autocast to float16 (5 exponent bits: overflows above 65504; about 3 significant digits).
    Fp16,
}

impl Precision {
    /// Its name on the command line and in specs.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = AttribError;

    /// `fp32`, `bf16` or `fp16` (also `float32`, `bfloat16`, `float16`, `half`).
    fn from_str(s: &str) -> Result<Precision> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "float16" | "half" => Ok(Precision::Fp16),
            other => Err(AttribError::param("precision", format!("`{other}` is not a precision; use fp32, bf16 or fp16"))),
        }
    }
}

mod ffi {
    use std::os::raw::c_int;
    extern "C" {
        pub fn attrib_autocast_enter(device_type: c_int, dtype: c_int, saved_enabled: *mut c_int, saved_dtype: *mut c_int) -> c_int;
        pub fn attrib_autocast_exit(device_type: c_int, saved_enabled: c_int, saved_dtype: c_int);
        pub fn attrib_autocast_enabled(device_type: c_int) -> c_int;
    }
}

fn device_type(device: Device) -> Option<i32> {
    match device {
        Device::Cpu => Some(0),
        Device::Cuda(_) => Some(1),
        _ => None,
    }
}

/// An autocast region on one device type, for this thread; dropping it restores the state it
/// found (regions nest).
#[derive(Debug)]
pub struct Autocast {
    device_type: i32,
    saved_enabled: i32,
    saved_dtype: i32,
}

impl Autocast {
    /// Enter a region for `precision` on `device`'s type: `None` for [`Precision::Fp32`].
    /// Errors on a device type libtorch's autocast does not cover here (only CPU and CUDA).
    pub fn enter(device: Device, precision: Precision) -> Result<Option<Autocast>> {
        let dtype = match precision {
            Precision::Fp32 => return Ok(None),
            Precision::Bf16 => 0,
            Precision::Fp16 => 1,
        };
        let unsupported =
            || AttribError::param("precision", format!("{} autocast is not available on {device:?}; use fp32", precision.name()));
        let device_type = device_type(device).ok_or_else(unsupported)?;
        let (mut saved_enabled, mut saved_dtype) = (0, 0);
        // SAFETY: plain FFI call with valid out-pointers; the C++ side catches every exception.
        let rc = unsafe { ffi::attrib_autocast_enter(device_type, dtype, &mut saved_enabled, &mut saved_dtype) };
        if rc != 0 {
            return Err(unsupported());
        }
        Ok(Some(Autocast { device_type, saved_enabled, saved_dtype }))
    }

    /// Whether an autocast region is active on `device`'s type in this thread.
    pub fn active(device: Device) -> bool {
        // SAFETY: plain FFI call; the C++ side catches every exception.
        device_type(device).is_some_and(|t| unsafe { ffi::attrib_autocast_enabled(t) } != 0)
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores the state saved by the matching `attrib_autocast_enter`.
        unsafe { ffi::attrib_autocast_exit(self.device_type, self.saved_enabled, self.saved_dtype) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn names_parse_and_round_trip() {
        for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert_eq!("bfloat16".parse::<Precision>().unwrap(), Precision::Bf16);
        let err = "int8".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("fp32, bf16 or fp16"), "{err}");
    }

    #[test]
    fn a_region_casts_matrix_products_and_restores_the_state() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        assert!(!Autocast::active(Device::Cpu));
        {
            let _outer = Autocast::enter(Device::Cpu, Precision::Bf16).unwrap().unwrap();
            assert!(Autocast::active(Device::Cpu));
            assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
            {
                let _inner = Autocast::enter(Device::Cpu, Precision::Bf16).unwrap();
                assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
            }
            assert!(Autocast::active(Device::Cpu), "the inner region restored the outer one");
            // Reductions stay in float32.
            assert_eq!(a.sum(Kind::Float).kind(), Kind::Float);
        }
        assert!(!Autocast::active(Device::Cpu));
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        assert!(Autocast::enter(Device::Cpu, Precision::Fp32).unwrap().is_none());
    }
}
