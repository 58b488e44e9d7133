//! Noisy linear imputation (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for
//! Attribution Methods", ROAD): removed pixels are filled in from the pixels kept around them, so
//! that the removal itself (a black hole in the image) does not leak which pixels were removed.
//!
//! Every removed pixel `i` of an image channel takes the weighted mean of its 8 neighbours inside
//! the image, weight `1/6` for the 4 direct ones and `1/12` for the diagonals, where neighbours
//! that are removed too are unknowns of the same system:
//!
//! ```text
//! D_i u_i − Σ_{j ∈ R} w_ij u_j = Σ_{j ∉ R} w_ij x_j        for every removed i ∈ R
//! ```
//!
//! with `D_i = Σ_j w_ij` over the neighbours inside the image (1 away from the border). Then
//! Gaussian noise of standard deviation `noise` (default 0.01, ROAD's) is added to the imputed
//! pixels only. A linear ramp `x = a·h + b·w + c` satisfies the interior equations (the stencil is
//! symmetric), so it is reproduced exactly wherever the removed region keeps off the border.
//!
//! The system is symmetric and positive definite on every connected part of `R` that touches a
//! kept pixel; it is solved for all images, channels, rows and steps of a chunk at once by
//! conjugate gradients written as tensor operations (a 3×3 convolution applies the stencil), each
//! (row, channel) with its own step sizes, until every system's residual satisfies
//! `‖b − A u‖₂ ≤ tolerance · ‖b‖₂` (default `1e-6`, in float64). A part of `R` that touches no
//! kept pixel (a channel removed entirely) has a zero right-hand side and stays 0, plus noise.
//! The convergence check reads one number back to the host every [`CHECK_EVERY`] iterations.

use attrib_core::{AttribError, Result, TorchResultExt};
use tch::{Device, Kind, Tensor};

/// Weight of a direct (edge-sharing) neighbour.
pub const DIRECT: f64 = 1.0 / 6.0;
/// Weight of a diagonal neighbour.
pub const DIAGONAL: f64 = 1.0 / 12.0;
/// Iterations between two convergence checks.
pub const CHECK_EVERY: usize = 8;

/// Parameters of the noisy linear imputation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Road {
    /// Standard deviation of the Gaussian noise added to imputed pixels (default 0.01, ROAD's;
    /// 0 for none).
    pub noise: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Relative residual at which the conjugate-gradient solve stops (default 1e-6).
    pub tolerance: f64,
    /// Iterations at most before the solve fails with an error (default 2000).
    pub max_iterations: usize,
}

impl Default for Road {
    fn default() -> Self {
        Road { noise: 0.01, seed: 0, tolerance: 1e-6, max_iterations: 2000 }
    }
}

impl Road {
    /// Error unless the parameters are usable.
    pub fn check(&self) -> Result<()> {
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(AttribError::param("road noise", format!("must be finite and >= 0, got {}", self.noise)));
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(AttribError::param("road tolerance", format!("must be finite and > 0, got {}", self.tolerance)));
        }
        if self.max_iterations == 0 {
            return Err(AttribError::param("road max_iterations", "must be at least 1"));
        }
        Ok(())
    }
}

/// The noise-free imputation and how the solve went.
#[derive(Debug)]
pub struct Imputed {
    /// `x` with every removed element replaced by the solution (same shape and dtype as `x`).
    pub values: Tensor,
    /// Conjugate-gradient iterations run.
    pub iterations: usize,
    /// The largest relative residual `‖b − A u‖₂ / ‖b‖₂` over the systems at the end.
    pub residual: f64,
}

/// The 3×3 stencil as a convolution weight `[1, 1, 3, 3]` (centre 0), float64 on `device`.
fn stencil(device: Device) -> Result<Tensor> {
    let w = [DIAGONAL, DIRECT, DIAGONAL, DIRECT, 0.0, DIRECT, DIAGONAL, DIRECT, DIAGONAL];
    Tensor::f_from_slice(&w).and_then(|t| t.f_reshape([1, 1, 3, 3])).and_then(|t| t.f_to_device(device)).ctx("making the stencil")
}

/// `K ∗ u` with zero padding: the weighted sum of the in-image neighbours (`u`: `[B, 1, H, W]`).
fn neighbours(u: &Tensor, k: &Tensor) -> Result<Tensor> {
    u.f_conv2d::<Tensor>(k, None, [1, 1], [1, 1], [1, 1], 1).ctx("applying the stencil")
}

/// Per system (dimension 0) sum over the pixels: `[B, 1, 1, 1]`.
fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.f_mul(b).and_then(|p| p.f_sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Double)).ctx("conjugate-gradient dot products")
}

/// `num / den` where `den > 0`, 0 elsewhere.
fn ratio(num: &Tensor, den: &Tensor) -> Result<Tensor> {
    let pos = den.f_gt(0.0).ctx("conjugate-gradient step")?;
    let safe = den.f_ones_like().and_then(|o| den.f_where_self(&pos, &o)).ctx("conjugate-gradient step")?;
    num.f_div(&safe).and_then(|q| q.f_where_self(&pos, &q.f_zeros_like()?)).ctx("conjugate-gradient step")
}

/// The noise-free imputation of the elements of `x` (`[N, ..., H, W]`, at least 3 dimensions:
/// every leading index is one image channel) where `removed` (bool, same shape) is true; see the
/// [module docs](self).
pub fn impute(x: &Tensor, removed: &Tensor, tolerance: f64, max_iterations: usize) -> Result<Imputed> {
    let size = x.size();
    if size.len() < 3 {
        return Err(AttribError::NotApplicable(format!(
            "noisy linear imputation (ROAD) needs image inputs [N, (C,) H, W]; this input has shape {size:?}"
        )));
    }
    if removed.size() != size {
        return Err(AttribError::InputShape(format!("the removal mask has shape {:?}, the input {size:?}", removed.size())));
    }
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    let device = x.device();
    let k = stencil(device)?;
    let ctx = "setting up the imputation";
    let xd = x.f_to_kind(Kind::Double).and_then(|t| t.f_reshape([-1, 1, h, w])).ctx(ctx)?;
    let m = removed.f_to_kind(Kind::Double).and_then(|t| t.f_reshape([-1, 1, h, w])).ctx(ctx)?;
    let kept = m.f_neg().and_then(|t| t.f_add_scalar(1.0)).ctx(ctx)?;
    // D: the weight of the in-image neighbours of every pixel.
    let d = neighbours(&m.f_ones_like().ctx(ctx)?, &k)?;
    // A u = M ⊙ (D ⊙ u − K ∗ u) for u supported on the removed pixels.
    let apply = |u: &Tensor| -> Result<Tensor> {
        let ku = neighbours(u, &k)?;
        u.f_mul(&d).and_then(|du| du.f_sub(&ku)).and_then(|v| v.f_mul(&m)).ctx("applying the system")
    };
    let b = neighbours(&xd.f_mul(&kept).ctx(ctx)?, &k)?.f_mul(&m).ctx(ctx)?;
    let b_norm = dot(&b, &b)?.f_sqrt().ctx(ctx)?;
    let mut u = b.f_zeros_like().ctx(ctx)?;
    let mut r = b.shallow_clone();
    let mut p = r.shallow_clone();
    let mut rs = dot(&r, &r)?;
    let relative = |rs: &Tensor| -> Result<f64> {
        let worst = ratio(&rs.f_sqrt().ctx("residual")?, &b_norm)?.f_max().ctx("residual")?;
        f64::try_from(&worst).ctx("reading the residual")
    };
    let mut residual = relative(&rs)?;
    let mut iterations = 0;
    while residual > tolerance {
        if iterations >= max_iterations {
            return Err(AttribError::param(
                "road max_iterations",
                format!("the imputation did not reach the tolerance {tolerance:e} in {max_iterations} iterations (relative residual {residual:e}); raise the iterations or the tolerance"),
            ));
        }
        for _ in 0..CHECK_EVERY {
            let ap = apply(&p)?;
            let alpha = ratio(&rs, &dot(&p, &ap)?)?;
            u = u.f_add(&p.f_mul(&alpha).ctx("conjugate-gradient update")?).ctx("conjugate-gradient update")?;
            r = r.f_sub(&ap.f_mul(&alpha).ctx("conjugate-gradient update")?).ctx("conjugate-gradient update")?;
            let rs_next = dot(&r, &r)?;
            let beta = ratio(&rs_next, &rs)?;
            p = r.f_add(&p.f_mul(&beta).ctx("conjugate-gradient update")?).ctx("conjugate-gradient update")?;
            rs = rs_next;
            iterations += 1;
        }
        residual = relative(&rs)?;
    }
    let mask = removed.f_reshape([-1, 1, h, w]).ctx(ctx)?;
    let values = u
        .f_where_self(&mask, &xd)
        .and_then(|v| v.f_reshape(&size))
        .and_then(|v| v.f_to_kind(x.kind()))
        .ctx("writing the imputation")?;
    Ok(Imputed { values, iterations, residual })
}

/// `x` with the removed elements imputed and `noise` (a tensor shaped like `x`, the standard
/// normal draws already scaled) added to them.
pub fn impute_noisy(x: &Tensor, removed: &Tensor, noise: Option<&Tensor>, road: &Road) -> Result<Tensor> {
    let filled = impute(x, removed, road.tolerance, road.max_iterations)?.values;
    match noise {
        Some(eps) => {
            let noisy = filled.f_add(eps).ctx("adding imputation noise")?;
            noisy.f_where_self(removed, &filled).ctx("adding imputation noise")
        }
        None => Ok(filled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The residual of the stencil equations at the removed pixels of `y` (`[B, 1, H, W]`
    /// float64): `D_i y_i − Σ_j w_ij y_j`.
    fn equation_residual(y: &Tensor, removed: &Tensor) -> Tensor {
        let k = stencil(Device::Cpu).unwrap();
        let d = neighbours(&y.ones_like(), &k).unwrap();
        (y * d - neighbours(y, &k).unwrap()) * removed.to_kind(Kind::Double)
    }

    fn ramp(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        let rows = Tensor::arange(h, (Kind::Double, Device::Cpu)).reshape([1, 1, h, 1]);
        let cols = Tensor::arange(w, (Kind::Double, Device::Cpu)).reshape([1, 1, 1, w]);
        let base = rows * 0.3 - cols * 0.7 + 2.0;
        let scale = Tensor::arange(n * c, (Kind::Double, Device::Cpu)).reshape([n, c, 1, 1]) + 1.0;
        base * scale
    }

    #[test]
    fn a_linear_ramp_is_reproduced_in_the_interior() {
        let x = ramp(2, 3, 12, 10);
        // Interior holes of several shapes (none touches the border), different per row.
        let removed = Tensor::zeros([2, 3, 12, 10], (Kind::Bool, Device::Cpu));
        let _ = removed.narrow(2, 2, 6).narrow(3, 3, 5).fill_(1);
        let _ = removed.get(1).narrow(1, 8, 3).narrow(2, 1, 8).fill_(1);
        let got = impute(&x, &removed, 1e-10, 2000).unwrap();
        let err = (&got.values - &x).abs().max().double_value(&[]);
        assert!(err < 1e-8, "ramp error {err}");
        assert!(got.iterations > 0 && got.residual <= 1e-10);
        // The solver actually filled the holes: the removed values were not read.
        let poisoned = x.where_self(&removed.logical_not(), &x.full_like(1e6));
        let again = impute(&poisoned, &removed, 1e-10, 2000).unwrap();
        assert!((&again.values - &x).abs().max().double_value(&[]) < 1e-8);
    }

    #[test]
    fn the_imputation_satisfies_the_stencil_equations() {
        tch::manual_seed(5);
        let x = Tensor::rand([3, 2, 9, 11], (Kind::Double, Device::Cpu));
        // Random removals, border pixels included, and one channel removed entirely.
        let removed = Tensor::rand([3, 2, 9, 11], (Kind::Double, Device::Cpu)).gt(0.4);
        let _ = removed.get(2).get(1).fill_(1);
        let tol = 1e-7;
        let got = impute(&x, &removed, tol, 2000).unwrap();
        let y = got.values.reshape([-1, 1, 9, 11]);
        let m = removed.reshape([-1, 1, 9, 11]);
        let res = equation_residual(&y, &m);
        // b of each system: the kept neighbours' weighted sum at removed pixels.
        let k = stencil(Device::Cpu).unwrap();
        let kept = m.logical_not().to_kind(Kind::Double);
        let b = neighbours(&(x.reshape([-1, 1, 9, 11]) * &kept), &k).unwrap() * m.to_kind(Kind::Double);
        let res_norm = res.square().sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double).sqrt();
        let b_norm = b.square().sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double).sqrt();
        let (res_norm, b_norm) = (Vec::<f64>::try_from(res_norm).unwrap(), Vec::<f64>::try_from(b_norm).unwrap());
        for (r, b) in res_norm.iter().zip(&b_norm) {
            assert!(*r <= tol * b + 1e-12, "residual {r} for |b| {b}");
        }
        // Kept pixels are untouched; the fully removed channel is 0.
        assert!(got.values.masked_select(&removed.logical_not()).equal(&x.masked_select(&removed.logical_not())));
        assert_eq!(got.values.get(2).get(1).abs().max().double_value(&[]), 0.0);
        // An imputed pixel with every neighbour kept is exactly their weighted mean.
        let x2 = Tensor::rand([1, 1, 5, 5], (Kind::Double, Device::Cpu));
        let one = Tensor::zeros([1, 1, 5, 5], (Kind::Bool, Device::Cpu));
        let _ = one.get(0).get(0).get(2).get(2).fill_(1);
        let v = impute(&x2, &one, 1e-12, 10).unwrap().values.double_value(&[0, 0, 2, 2]);
        let g = |i: i64, j: i64| x2.double_value(&[0, 0, i, j]);
        let want = (g(1, 2) + g(3, 2) + g(2, 1) + g(2, 3)) / 6.0 + (g(1, 1) + g(1, 3) + g(3, 1) + g(3, 3)) / 12.0;
        assert!((v - want).abs() < 1e-14, "{v} vs {want}");
    }

    #[test]
    fn float32_inputs_and_errors() {
        let x = ramp(1, 1, 8, 8).to_kind(Kind::Float);
        let removed = Tensor::zeros([1, 1, 8, 8], (Kind::Bool, Device::Cpu));
        let _ = removed.narrow(2, 2, 4).narrow(3, 2, 4).fill_(1);
        let got = impute(&x, &removed, 1e-8, 500).unwrap();
        assert_eq!(got.values.kind(), Kind::Float);
        assert!((&got.values - &x).abs().max().double_value(&[]) < 1e-5);
        let e = impute(&Tensor::zeros([2, 5], (Kind::Float, Device::Cpu)), &Tensor::zeros([2, 5], (Kind::Bool, Device::Cpu)), 1e-6, 10).unwrap_err();
        assert!(e.to_string().contains("image inputs"), "{e}");
        let big = Tensor::rand([1, 1, 40, 40], (Kind::Double, Device::Cpu));
        let hole = Tensor::ones([1, 1, 40, 40], (Kind::Bool, Device::Cpu));
        let _ = hole.get(0).get(0).get(0).get(0).fill_(0);
        let e = impute(&big, &hole, 1e-12, 8).unwrap_err();
        assert!(e.to_string().contains("did not reach the tolerance"), "{e}");
        assert!(Road { noise: -1.0, ..Default::default() }.check().is_err());
        assert!(Road { tolerance: 0.0, ..Default::default() }.check().is_err());
    }
}
