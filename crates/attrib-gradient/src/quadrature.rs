//! Quadrature rules for the path integral of Integrated Gradients, on `[0, 1]`.
//!
//! Each rule gives nodes `α_k` and weights `w_k` with `∫₀¹ g(α) dα ≈ Σ_k w_k g(α_k)`.
//!
//! | rule | nodes | weights |
//! |---|---|---|
//! | `gausslegendre` | roots of the Legendre polynomial `P_n`, mapped to `[0, 1]` | `w_k / 2` (Gauss weights) |
//! | `riemann_left` | `k / n`, `k = 0..n−1` | `1 / n` |
//! | `riemann_right` | `k / n`, `k = 1..n` | `1 / n` |
//! | `riemann_middle` | `(k + ½) / n`, `k = 0..n−1` | `1 / n` |
//! | `riemann_trapezoid` | `k / (n − 1)`, `k = 0..n−1` | `1 / (n − 1)`, halved at both ends |
//!
//! Nodes and weights match Captum 0.9's `approximation_methods.py` (Gauss–Legendre from the
//! Legendre roots as numpy's `leggauss` gives them), **except** `riemann_trapezoid`: Captum uses
//! the trapezoid nodes `k / (n − 1)` with weights `1 / n` (halved at the ends), which sum to
//! `(n − 1) / n` instead of 1, so Captum's trapezoid IG is `(n − 1) / n` times the integral it
//! approximates (completeness fails by that factor even on a linear model). attrib uses the
//! proper trapezoid weights; its result is Captum's times `n / (n − 1)`.

use attrib_core::{AttribError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A quadrature rule for the IG path integral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Quadrature {
    /// Gauss–Legendre (Captum's default `gausslegendre`): exact for polynomials of degree
    /// `2n − 1`, the most accurate on smooth models.
    #[default]
    #[serde(rename = "gausslegendre")]
    GaussLegendre,
    /// Left Riemann sum (`riemann_left`).
    #[serde(rename = "riemann_left")]
    RiemannLeft,
    /// Right Riemann sum (`riemann_right`).
    #[serde(rename = "riemann_right")]
    RiemannRight,
    /// Midpoint rule (`riemann_middle`).
    #[serde(rename = "riemann_middle")]
    RiemannMiddle,
    /// Trapezoid rule (`riemann_trapezoid`); see the module docs for the difference with Captum.
    #[serde(rename = "riemann_trapezoid")]
    RiemannTrapezoid,
}

impl Quadrature {
    /// Every rule, in Captum's naming.
    pub const ALL: [Quadrature; 5] = [
        Quadrature::GaussLegendre,
        Quadrature::RiemannLeft,
        Quadrature::RiemannRight,
        Quadrature::RiemannMiddle,
        Quadrature::RiemannTrapezoid,
    ];

    /// Captum's name of the rule.
    pub fn name(self) -> &'static str {
        match self {
            Quadrature::GaussLegendre => "gausslegendre",
            Quadrature::RiemannLeft => "riemann_left",
            Quadrature::RiemannRight => "riemann_right",
            Quadrature::RiemannMiddle => "riemann_middle",
            Quadrature::RiemannTrapezoid => "riemann_trapezoid",
        }
    }

    /// The smallest number of nodes the rule accepts (2 for the trapezoid, 1 otherwise).
    pub fn min_steps(self) -> usize {
        match self {
            Quadrature::RiemannTrapezoid => 2,
            _ => 1,
        }
    }

    /// Nodes `α_k ∈ [0, 1]` and weights `w_k` of the `n`-point rule (ascending nodes).
    pub fn nodes(self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        if n < self.min_steps() {
            return Err(AttribError::param(
                "n_steps",
                format!("{} needs at least {} step(s), got {n}", self.name(), self.min_steps()),
            ));
        }
        let nf = n as f64;
        Ok(match self {
            Quadrature::GaussLegendre => {
                let (x, w) = gauss_legendre(n);
                (x.iter().map(|x| 0.5 * (1.0 + x)).collect(), w.iter().map(|w| 0.5 * w).collect())
            }
            Quadrature::RiemannLeft => ((0..n).map(|k| k as f64 / nf).collect(), vec![1.0 / nf; n]),
            Quadrature::RiemannRight => ((1..=n).map(|k| k as f64 / nf).collect(), vec![1.0 / nf; n]),
            Quadrature::RiemannMiddle => ((0..n).map(|k| (k as f64 + 0.5) / nf).collect(), vec![1.0 / nf; n]),
            Quadrature::RiemannTrapezoid => {
                let h = 1.0 / (nf - 1.0);
                let mut w = vec![h; n];
                w[0] *= 0.5;
                w[n - 1] *= 0.5;
                ((0..n).map(|k| k as f64 * h).collect(), w)
            }
        })
    }
}

impl fmt::Display for Quadrature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quadrature {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<Quadrature> {
        Quadrature::ALL.into_iter().find(|q| q.name() == s.trim()).ok_or_else(|| {
            AttribError::param(
                "quadrature",
                format!(
                    "unknown quadrature `{s}`; use one of {}",
                    Quadrature::ALL.map(|q| q.name()).join(", ")
                ),
            )
        })
    }
}

/// Gauss–Legendre nodes (ascending) and weights on `[−1, 1]`, by Newton's method on `P_n`
/// from Tricomi's initial guesses. Accurate to about 1e-15.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    let nf = n as f64;
    // P_n and P_n' at z by the three-term recurrence.
    let legendre = |z: f64| -> (f64, f64) {
        let (mut p0, mut p1) = (1.0, z);
        if n == 0 {
            return (1.0, 0.0);
        }
        for k in 2..=n {
            let kf = k as f64;
            let p2 = ((2.0 * kf - 1.0) * z * p1 - (kf - 1.0) * p0) / kf;
            p0 = p1;
            p1 = p2;
        }
        let dp = nf * (z * p1 - p0) / (z * z - 1.0);
        (p1, dp)
    };
    for i in 0..n.div_ceil(2) {
        // i-th largest root.
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        for _ in 0..100 {
            let (p, dp) = legendre(z);
            let dz = p / dp;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        let (_, dp) = legendre(z);
        let wi = 2.0 / ((1.0 - z * z) * dp * dp);
        x[n - 1 - i] = z;
        x[i] = -z;
        w[n - 1 - i] = wi;
        w[i] = wi;
    }
    if n % 2 == 1 {
        x[n / 2] = 0.0;
    }
    (x, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_integrate_polynomials() {
        for q in Quadrature::ALL {
            for n in [2usize, 3, 7, 50] {
                let (a, w) = q.nodes(n).unwrap();
                assert_eq!(a.len(), n);
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{q} n={n}");
                assert!(a.iter().all(|a| (0.0..=1.0).contains(a)));
                // The symmetric rules integrate a linear function exactly; left/right are off by
                // exactly ±slope/(2n).
                let lin: f64 = a.iter().zip(&w).map(|(a, w)| w * (3.0 * a + 1.0)).sum();
                let expected = match q {
                    Quadrature::RiemannLeft => 2.5 - 1.5 / n as f64,
                    Quadrature::RiemannRight => 2.5 + 1.5 / n as f64,
                    _ => 2.5,
                };
                assert!((lin - expected).abs() < 1e-12, "{q} n={n}: {lin}");
            }
        }
        // Gauss–Legendre with n nodes is exact up to degree 2n-1.
        let (a, w) = Quadrature::GaussLegendre.nodes(5).unwrap();
        let i9: f64 = a.iter().zip(&w).map(|(a, w)| w * a.powi(9)).sum();
        assert!((i9 - 0.1).abs() < 1e-13, "{i9}");
        // Known 2-point rule: ±1/√3.
        let (x, w) = gauss_legendre(2);
        assert!((x[1] - 1.0 / 3f64.sqrt()).abs() < 1e-15 && (w[0] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn names_round_trip_and_bad_input_is_rejected() {
        for q in Quadrature::ALL {
            assert_eq!(q.name().parse::<Quadrature>().unwrap(), q);
        }
        let e = "simpson".parse::<Quadrature>().unwrap_err().to_string();
        assert!(e.contains("gausslegendre") && e.contains("simpson"), "{e}");
        assert!(Quadrature::RiemannTrapezoid.nodes(1).is_err());
        assert!(Quadrature::GaussLegendre.nodes(0).is_err());
    }
}
