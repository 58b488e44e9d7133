//! Batched weighted regressions of KernelSHAP and LIME: one fit per row of the explained batch,
//! all rows together.
//!
//! The design (the coalitions `z`, `[m, G]`) is shared by every row; the targets `y` (`[m, r]`)
//! and, for LIME, the sample weights (`[m, r]`) differ per row. The moment matrices of all rows
//! are built with one tensor contraction each; the fits then work on those `G × G` matrices:
//!
//! - [`constrained_wls`] (KernelSHAP): weights shared by the rows, so one pseudo-inverse of the
//!   bordered (KKT) matrix serves every right-hand side;
//! - [`fit_surrogate`] (LIME): per-row weighted covariances `[r, G, G]`, then a batched linear
//!   solve (ridge), a batched pseudo-inverse (least squares) or coordinate descent (lasso: on
//!   the host row by row on the CPU, tiny `G × G` matrices; elsewhere all rows at once on
//!   tensors, each coordinate of every row updated together, a converged row masked out).

use super::lasso::lasso_cd;
use attrib_core::{AttribError, Result, TorchResultExt};
use tch::{Kind, Tensor};

/// Relative cut-off of the pseudo-inverses: eigenvalues below `RCOND × largest` count as zero
/// (too few coalitions to determine every group: the minimum-norm solution).
const RCOND: f64 = 1e-12;

/// Minimise `Σ_j w_j (y_{j,c} − z_j·φ_c)²` subject to `Σ_g φ_{g,c} = total_c`, for every column
/// `c` of `y` at once. `z`: `[m, G]` (0/1, any float kind), `w`: `[m]` weights ≥ 0, `y`: `[m, r]`,
/// `total`: `[r]`. Returns `φ` as `[G, r]` (float64).
///
/// The constraint enters through a Lagrange multiplier: the bordered matrix
/// `[[ZᵀWZ, c·1], [c·1ᵀ, 0]]` (`c` scales the border to the size of `ZᵀWZ`) is the same for all
/// columns, so one pseudo-inverse of a `(G+1)²` matrix solves every row; with too few
/// coalitions it gives the minimum-norm solution. The pseudo-inverses here go through the SVD,
/// not the symmetric eigendecomposition: libtorch's `eigh` took 10 ms for a 31 × 31 matrix with
/// two OpenMP threads (0.1 ms with one), the SVD 0.13 ms. The sums are then made
/// exact to rounding by spreading the remaining difference evenly.
pub(crate) fn constrained_wls(z: &Tensor, w: &Tensor, y: &Tensor, total: &Tensor) -> Result<Tensor> {
    let ctx = "solving the constrained least squares";
    let (m, g) = dims2(z, "coalitions")?;
    let r = dims2(y, "outputs")?.1;
    if w.size() != [m] || y.size()[0] != m || total.size() != [r] {
        return Err(AttribError::Internal(format!(
            "constrained_wls: z {:?}, w {:?}, y {:?}, total {:?}",
            z.size(),
            w.size(),
            y.size(),
            total.size()
        )));
    }
    let z = z.f_to_kind(Kind::Double).ctx(ctx)?;
    let w = w.f_to_kind(Kind::Double).ctx(ctx)?;
    let y = y.f_to_kind(Kind::Double).ctx(ctx)?;
    let total = total.f_to_kind(Kind::Double).ctx(ctx)?;
    let zw = z.f_mul(&w.f_unsqueeze(1).ctx(ctx)?).ctx(ctx)?; // [m, G]
    let a = zw.f_tr().and_then(|t| t.f_matmul(&z)).ctx(ctx)?; // [G, G]
    let b = zw.f_tr().and_then(|t| t.f_matmul(&y)).ctx(ctx)?; // [G, r]
    let scale = a.f_diagonal(0, 0, 1).and_then(|d| d.f_mean(Kind::Double)).and_then(|m| m.f_double_value(&[])).ctx(ctx)?;
    let c = if scale > 0.0 && scale.is_finite() { scale } else { 1.0 };
    let sol = bordered_solve(a, b, &total, c, ctx)?;
    let phi = sol.f_narrow(0, 0, g).ctx(ctx)?;
    // Efficiency to rounding: the solve satisfies it up to the conditioning of the bordered
    // matrix; spread what is left over the groups.
    let gap = total.f_sub(&phi.f_sum_dim_intlist(0, false, Kind::Double).ctx(ctx)?).ctx(ctx)?;
    phi.f_add(&gap.f_div_scalar(g as f64).and_then(|t| t.f_unsqueeze(0)).ctx(ctx)?).ctx(ctx)
}

/// Solve the bordered (KKT) system `[[A, c·1], [c·1ᵀ, 0]] [φ; λ] = [B; c·total]` for every
/// column of `B` with one pseudo-inverse (cut-off [`RCOND`]): the minimiser of the quadratic with
/// normal matrix `A` (`[p, p]`, float64) and right-hand sides `B` (`[p, r]`) subject to
/// `Σ φ = total` (`[r]`, float64), the minimum-norm one when `A` is singular. `c` scales the
/// border to the size of `A`. Returns the whole solution, `[p + 1, r]` (the multiplier last);
/// `ctx` names the caller's solve in errors. Shared by [`constrained_wls`] and KernelSHAP's
/// size-slopes fit (`kernel_slopes.rs`, with its own `A`, `B` and `c`).
pub(super) fn bordered_solve(a: Tensor, b: Tensor, total: &Tensor, c: f64, ctx: &'static str) -> Result<Tensor> {
    let device = a.device();
    let p = a.size()[0];
    let border = Tensor::f_full([p, 1], c, (Kind::Double, device)).ctx(ctx)?;
    let top = Tensor::f_cat(&[a, border.shallow_clone()], 1).ctx(ctx)?;
    let bottom = Tensor::f_cat(&[border.f_tr().ctx(ctx)?, Tensor::f_zeros([1, 1], (Kind::Double, device)).ctx(ctx)?], 1).ctx(ctx)?;
    let kkt = Tensor::f_cat(&[top, bottom], 0).ctx(ctx)?;
    let rhs = Tensor::f_cat(&[b, total.f_mul_scalar(c).and_then(|t| t.f_unsqueeze(0)).ctx(ctx)?], 0).ctx(ctx)?;
    kkt.f_linalg_pinv_atol_rtol_float(None, Some(RCOND), false).and_then(|p| p.f_matmul(&rhs)).ctx(ctx)
}

/// The interpretable model LIME fits to the weighted samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Surrogate {
    /// scikit-learn's `Lasso(alpha)` (Captum's default, `alpha = 0.01`): minimises
    /// `1/(2 Σ_j s_j) Σ_j s_j (y_j − b − z_j·β)² + α ‖β‖₁`, intercept `b` not penalised, by
    /// coordinate descent with scikit-learn's stopping rule (duality gap ≤ 1e-4 of the weighted
    /// variance of `y`, at most 1000 sweeps); `alpha = 0` is least squares.
    Lasso {
        /// Weight of the L1 penalty.
        alpha: f64,
    },
    /// scikit-learn's `Ridge(alpha)`: minimises `Σ_j s_j (y_j − b − z_j·β)² + α ‖β‖²`.
    Ridge {
        /// Weight of the L2 penalty.
        alpha: f64,
    },
    /// scikit-learn's `LinearRegression`: weighted least squares with an intercept (the
    /// minimum-norm solution when the samples do not determine every coefficient).
    Linear,
}

impl Surrogate {
    /// The name used in specs (`lasso`, `ridge`, `linear`).
    pub fn name(self) -> &'static str {
        match self {
            Surrogate::Lasso { .. } => "lasso",
            Surrogate::Ridge { .. } => "ridge",
            Surrogate::Linear => "linear",
        }
    }
}

/// Weighted moments of every row `c`: with `s = w[:, c]`, `S = Σ_j s_j`, the weighted means
/// `z̄ = Σ s_j z_j / S`, `ȳ`, the covariance `C = Σ s_j (z_j − z̄)(z_j − z̄)ᵀ / S` and
/// `d = Σ s_j (z_j − z̄)(y_j − ȳ) / S`.
pub(super) struct Moments {
    /// `[r]`
    pub total_weight: Tensor,
    /// `[r, G]`
    pub zbar: Tensor,
    /// `[r]`
    pub ybar: Tensor,
    /// `[r, G, G]`
    pub cov: Tensor,
    /// `[r, G]`
    pub cross: Tensor,
    /// `[r]`: the weighted variance of `y`, `Σ s_j (y_j − ȳ)² / S`.
    pub yvar: Tensor,
}

pub(super) fn moments(z: &Tensor, w: &Tensor, y: &Tensor) -> Result<Moments> {
    let ctx = "weighted moments of the samples";
    let sw = w.f_sum_dim_intlist(0, false, Kind::Double).ctx(ctx)?; // [r]
    if sw.f_le(0.0).and_then(|t| t.f_any()).and_then(|t| t.f_int64_value(&[])).ctx(ctx)? != 0 {
        return Err(AttribError::param("n_samples", "every sample has weight 0 for some row; draw more samples or widen the kernel"));
    }
    let wn = w.f_div(&sw.f_unsqueeze(0).ctx(ctx)?).ctx(ctx)?; // [m, r], columns sum to 1
    let zbar = wn.f_tr().and_then(|t| t.f_matmul(z)).ctx(ctx)?; // [r, G]
    let ybar = wn.f_mul(y).and_then(|t| t.f_sum_dim_intlist(0, false, Kind::Double)).ctx(ctx)?; // [r]
    let second = Tensor::f_einsum("mr,mg,mh->rgh", &[&wn, z, z], None::<&[i64]>).ctx(ctx)?;
    let outer = zbar.f_unsqueeze(2).and_then(|a| a.f_mul(&zbar.f_unsqueeze(1)?)).ctx(ctx)?;
    let cov = second.f_sub(&outer).ctx(ctx)?;
    let zy = Tensor::f_einsum("mr,mg,mr->rg", &[&wn, z, y], None::<&[i64]>).ctx(ctx)?;
    let cross = zy.f_sub(&zbar.f_mul(&ybar.f_unsqueeze(1).ctx(ctx)?).ctx(ctx)?).ctx(ctx)?;
    let yvar = y
        .f_sub(&ybar.f_unsqueeze(0).ctx(ctx)?)
        .and_then(|d| d.f_square())
        .and_then(|d| d.f_mul(&wn))
        .and_then(|d| d.f_sum_dim_intlist(0, false, Kind::Double))
        .ctx(ctx)?;
    Ok(Moments { total_weight: sw, zbar, ybar, cov, cross, yvar })
}

/// Fit `surrogate` to `y[:, c] ≈ b_c + z·β_c` with sample weights `w[:, c]`, for every column `c`
/// at once. `z`: `[m, G]`, `w` and `y`: `[m, r]`. Returns the coefficients `[G, r]` and the
/// intercepts `[r]` (float64).
pub(crate) fn fit_surrogate(z: &Tensor, w: &Tensor, y: &Tensor, surrogate: Surrogate) -> Result<(Tensor, Tensor)> {
    let ctx = "fitting the surrogate model";
    let (m, g) = dims2(z, "samples")?;
    let r = dims2(y, "outputs")?.1;
    if w.size() != [m, r] || y.size()[0] != m {
        return Err(AttribError::Internal(format!("fit_surrogate: z {:?}, w {:?}, y {:?}", z.size(), w.size(), y.size())));
    }
    let z = z.f_to_kind(Kind::Double).ctx(ctx)?;
    let w = w.f_to_kind(Kind::Double).ctx(ctx)?;
    let y = y.f_to_kind(Kind::Double).ctx(ctx)?;
    let mo = moments(&z, &w, &y)?;
    // No penalty: least squares (scikit-learn's coordinate descent would only approach it).
    let surrogate = match surrogate {
        Surrogate::Lasso { alpha } if alpha <= 0.0 => Surrogate::Linear,
        s => s,
    };
    let beta = match surrogate {
        Surrogate::Linear => mo
            .cov
            .f_linalg_pinv_atol_rtol_float(None, Some(RCOND), false)
            .and_then(|p| p.f_matmul(&mo.cross.f_unsqueeze(2)?))
            .and_then(|b| b.f_squeeze_dim(2))
            .ctx(ctx)?,
        Surrogate::Ridge { alpha } => {
            // sklearn's Ridge does not normalise by the total weight: (S·C + αI) β = S·d.
            let s = mo.total_weight.f_view([r, 1, 1]).ctx(ctx)?;
            let eye = Tensor::f_eye(g, (Kind::Double, z.device())).ctx(ctx)?;
            let lhs = mo.cov.f_mul(&s).and_then(|c| c.f_add(&eye.f_mul_scalar(alpha)?)).ctx(ctx)?;
            let rhs = mo.cross.f_unsqueeze(2).and_then(|d| d.f_mul(&s)).ctx(ctx)?;
            let solved = if alpha > 0.0 {
                Tensor::f_linalg_solve(&lhs, &rhs, true).ctx(ctx)?
            } else {
                lhs.f_linalg_pinv_atol_rtol_float(None, Some(RCOND), false).and_then(|p| p.f_matmul(&rhs)).ctx(ctx)?
            };
            solved.f_squeeze_dim(2).ctx(ctx)?
        }
        Surrogate::Lasso { alpha } => lasso_cd(&mo.cov, &mo.cross, &mo.yvar, alpha)?,
    }; // [r, G]
    let intercept = mo.ybar.f_sub(&mo.zbar.f_mul(&beta).and_then(|t| t.f_sum_dim_intlist(1, false, Kind::Double)).ctx(ctx)?).ctx(ctx)?;
    Ok((beta.f_tr().and_then(|b| b.f_contiguous()).ctx(ctx)?, intercept))
}

fn dims2(t: &Tensor, what: &str) -> Result<(i64, i64)> {
    match t.size()[..] {
        [a, b] => Ok((a, b)),
        ref s => Err(AttribError::Internal(format!("{what} must be a matrix; got shape {s:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).reshape(shape)
    }

    fn max_abs(a: &Tensor) -> f64 {
        a.abs().max().double_value(&[])
    }

    /// All `2^g` coalitions as `[2^g, g]` float64 (bit `k` of row `s` is column `k`).
    fn all(g: i64) -> Tensor {
        let rows: Vec<f64> = (0..1i64 << g).flat_map(|s| (0..g).map(move |k| ((s >> k) & 1) as f64)).collect();
        t(&rows, &[1 << g, g])
    }

    #[test]
    fn constrained_wls_recovers_a_linear_game_and_keeps_the_sum() {
        // y = z·φ exactly: the fit must return φ whatever the weights; the constraint agrees.
        let z = all(4);
        let phi = t(&[1.0, -2.0, 0.5, 3.0, 0.0, 1.0, 1.0, -1.0], &[4, 2]);
        let y = z.matmul(&phi);
        let w = Tensor::rand([16], (Kind::Double, Device::Cpu)).f_add_scalar(0.1).unwrap();
        let total = phi.sum_dim_intlist(0, false, Kind::Double);
        let got = constrained_wls(&z, &w, &y, &total).unwrap();
        assert!(max_abs(&(got - &phi)) < 1e-12);
        // With a total that the data do not support, the constraint still holds exactly.
        let other = t(&[10.0, -4.0], &[2]);
        let got = constrained_wls(&z, &w, &y, &other).unwrap();
        assert!(max_abs(&(got.sum_dim_intlist(0, false, Kind::Double) - &other)) < 1e-12);
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // Gauss–Jordan elimination reads best with indices.
    fn constrained_wls_matches_an_explicit_elimination() {
        // Reference: substitute φ_G = total − Σ_{k<G} φ_k and solve the normal equations of the
        // remaining G − 1 unknowns by hand (Gaussian elimination on the host).
        tch::manual_seed(5);
        let (m, g) = (12i64, 4i64);
        let z = Tensor::randint(2, [m, g], (Kind::Double, Device::Cpu));
        let w = Tensor::rand([m], (Kind::Double, Device::Cpu)).f_add_scalar(0.2).unwrap();
        let y = Tensor::randn([m, 1], (Kind::Double, Device::Cpu));
        let total = t(&[0.7], &[1]);
        let got = constrained_wls(&z, &w, &y, &total).unwrap();
        let zf = Vec::<f64>::try_from(z.reshape([-1])).unwrap();
        let wf = Vec::<f64>::try_from(&w).unwrap();
        let yf = Vec::<f64>::try_from(y.reshape([-1])).unwrap();
        let gu = g as usize;
        let k = gu - 1;
        let mut a = vec![vec![0.0; k + 1]; k];
        for j in 0..m as usize {
            let row = &zf[j * gu..(j + 1) * gu];
            let x: Vec<f64> = (0..k).map(|c| row[c] - row[k]).collect();
            let target = yf[j] - row[k] * 0.7;
            for p in 0..k {
                for q in 0..k {
                    a[p][q] += wf[j] * x[p] * x[q];
                }
                a[p][k] += wf[j] * x[p] * target;
            }
        }
        for p in 0..k {
            let piv = a[p][p];
            for q in p..=k {
                a[p][q] /= piv;
            }
            for o in 0..k {
                if o != p {
                    let f = a[o][p];
                    for q in p..=k {
                        a[o][q] -= f * a[p][q];
                    }
                }
            }
        }
        let mut expect: Vec<f64> = (0..k).map(|p| a[p][k]).collect();
        expect.push(0.7 - expect.iter().sum::<f64>());
        let got = Vec::<f64>::try_from(got.reshape([-1])).unwrap();
        for (a, b) in got.iter().zip(&expect) {
            assert!((a - b).abs() < 1e-10, "{got:?} vs {expect:?}");
        }
    }

    #[test]
    fn constrained_wls_with_too_few_coalitions_is_finite_and_efficient() {
        let z = t(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &[2, 3]);
        let w = t(&[1.0, 1.0], &[2]);
        let y = t(&[1.0, 2.0], &[2, 1]);
        let got = constrained_wls(&z, &w, &y, &t(&[3.0], &[1])).unwrap();
        assert!(bool::try_from(got.isfinite().all()).unwrap());
        assert!((got.sum(Kind::Double).double_value(&[]) - 3.0).abs() < 1e-12);
        // One group: the answer is the total, whatever the samples.
        let one = constrained_wls(&Tensor::zeros([0, 1], (Kind::Double, Device::Cpu)), &Tensor::zeros([0], (Kind::Double, Device::Cpu)), &Tensor::zeros([0, 1], (Kind::Double, Device::Cpu)), &t(&[2.5], &[1])).unwrap();
        assert!((one.double_value(&[0, 0]) - 2.5).abs() < 1e-12);
    }

    /// A noiseless linear target with an intercept, per-row weights.
    fn linear_data(m: i64, g: i64, r: i64) -> (Tensor, Tensor, Tensor, Tensor, Tensor) {
        tch::manual_seed(11);
        let z = Tensor::randint(2, [m, g], (Kind::Double, Device::Cpu));
        let beta = Tensor::randn([g, r], (Kind::Double, Device::Cpu));
        let b0 = Tensor::randn([r], (Kind::Double, Device::Cpu));
        let y = z.matmul(&beta) + b0.unsqueeze(0);
        let w = Tensor::rand([m, r], (Kind::Double, Device::Cpu)) + 0.1;
        (z, w, y, beta, b0)
    }

    #[test]
    fn unpenalised_fits_recover_a_linear_target() {
        let (z, w, y, beta, b0) = linear_data(40, 5, 3);
        for s in [Surrogate::Linear, Surrogate::Ridge { alpha: 0.0 }, Surrogate::Lasso { alpha: 0.0 }] {
            let (got, icpt) = fit_surrogate(&z, &w, &y, s).unwrap();
            assert!(max_abs(&(got - &beta)) < 1e-9, "{s:?}");
            assert!(max_abs(&(icpt - &b0)) < 1e-9, "{s:?}");
        }
    }

    /// The objective of `s` for one row, on the host.
    fn objective(z: &Tensor, w: &Tensor, y: &Tensor, beta: &[f64], b0: f64, s: Surrogate) -> f64 {
        let (m, g) = (z.size()[0] as usize, z.size()[1] as usize);
        let zf = Vec::<f64>::try_from(z.reshape([-1])).unwrap();
        let wf = Vec::<f64>::try_from(w.reshape([-1])).unwrap();
        let yf = Vec::<f64>::try_from(y.reshape([-1])).unwrap();
        let sse: f64 = (0..m).map(|j| wf[j] * (yf[j] - b0 - (0..g).map(|k| zf[j * g + k] * beta[k]).sum::<f64>()).powi(2)).sum();
        let sw: f64 = wf.iter().sum();
        match s {
            Surrogate::Lasso { alpha } => sse / (2.0 * sw) + alpha * beta.iter().map(|b| b.abs()).sum::<f64>(),
            Surrogate::Ridge { alpha } => sse + alpha * beta.iter().map(|b| b * b).sum::<f64>(),
            Surrogate::Linear => sse,
        }
    }

    #[test]
    fn penalised_fits_minimise_their_objective() {
        // No perturbation of the returned coefficients or intercept lowers the objective.
        tch::manual_seed(2);
        let (m, g, r) = (30i64, 4i64, 2i64);
        let z = Tensor::randint(2, [m, g], (Kind::Double, Device::Cpu));
        let y = Tensor::randn([m, r], (Kind::Double, Device::Cpu));
        let w = Tensor::rand([m, r], (Kind::Double, Device::Cpu)) + 0.1;
        for s in [Surrogate::Lasso { alpha: 0.05 }, Surrogate::Ridge { alpha: 2.0 }, Surrogate::Linear] {
            let (beta, icpt) = fit_surrogate(&z, &w, &y, s).unwrap();
            for c in 0..r {
                let (zc, wc, yc) = (z.shallow_clone(), w.select(1, c), y.select(1, c));
                let b = Vec::<f64>::try_from(beta.select(1, c)).unwrap();
                let b0 = icpt.double_value(&[c]);
                let best = objective(&zc, &wc, &yc, &b, b0, s);
                // The lasso stops, as scikit-learn's, once the duality gap (a bound on the
                // distance to the optimum) is below 1e-4 of the weighted variance of y.
                let slack = match s {
                    Surrogate::Lasso { .. } => {
                        let mean = (&wc * &yc).sum(Kind::Double) / wc.sum(Kind::Double);
                        1e-4 * ((&yc - mean).square() * &wc).sum(Kind::Double).double_value(&[]) / wc.sum(Kind::Double).double_value(&[])
                    }
                    _ => 0.0,
                };
                for k in 0..=g as usize {
                    for step in [1e-4, -1e-4] {
                        let (mut bb, mut bb0) = (b.clone(), b0);
                        if k < g as usize {
                            bb[k] += step;
                        } else {
                            bb0 += step;
                        }
                        assert!(objective(&zc, &wc, &yc, &bb, bb0, s) >= best - slack - 1e-12, "{s:?} row {c} coordinate {k}");
                    }
                }
            }
        }
        // A large L1 penalty zeroes every coefficient; the intercept is the weighted mean.
        let (beta, icpt) = fit_surrogate(&z, &w, &y, Surrogate::Lasso { alpha: 100.0 }).unwrap();
        assert_eq!(max_abs(&beta), 0.0);
        let mean = (&w * &y).sum_dim_intlist(0, false, Kind::Double) / w.sum_dim_intlist(0, false, Kind::Double);
        assert!(max_abs(&(icpt - mean)) < 1e-12);
    }

    #[test]
    fn zero_weights_are_an_error() {
        let z = Tensor::ones([3, 2], (Kind::Double, Device::Cpu));
        let w = Tensor::zeros([3, 1], (Kind::Double, Device::Cpu));
        let y = Tensor::ones([3, 1], (Kind::Double, Device::Cpu));
        assert!(fit_surrogate(&z, &w, &y, Surrogate::Linear).is_err());
    }
}
