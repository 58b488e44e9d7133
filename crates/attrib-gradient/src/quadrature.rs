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

/// Gauss–Legendre nodes (ascending) and weights on `[−1, 1]`: nodes to about 1e-16 absolute,
/// weights to a few units in the last place, except the weights of the few nodes nearest each
/// end (below), whose relative error is about `1e-16 / θ²` (`x = cos θ`; absolute error below
/// 1e-16 in every case).
///
/// Cost: O(n) for the whole rule (about 10 ms for 100,000 nodes, 0.1 s for a million, on one
/// core of a shared two-core machine; the previous all-recurrence version took 131 s for
/// 100,000), except for `n ≤ 100`, where every node comes from the recurrence (O(n²) in all,
/// microseconds at these sizes, the same bits as before).
///
/// - The nodes near the ends (`n·sin θ < 30`: about nine at each end, whatever `n` is) and every
///   node for `n ≤ 100`: Newton's method on `P_n` evaluated by the three-term recurrence (O(n)
///   per evaluation, three or four evaluations per node), from Tricomi's initial guess
///   `θ ≈ π(k − ¼)/(n + ½)`.
/// - The other nodes: Newton's method in `θ` on the interior asymptotic expansion of
///   `P_n(cos θ)` (Stieltjes; Hale & Townsend 2013, "Fast and accurate computation of
///   Gauss–Legendre and Gauss–Jacobi quadrature nodes and weights", eq. 3.2), at most
///   [`INTERIOR_TERMS`] terms (fewer where they fall below 1e-18 of the first), O(1) per
///   evaluation, from the same guess refined by the next term of the roots' expansion (one or
///   two Newton steps). Its truncation error is about `Γ(M + ½)/(√π (2n sin θ)^M)` relative
///   for M terms, below 1e-18 where it is used. Weights from the same expansion:
///   `w = 2 / (dP_n(cos θ)/dθ)²`.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    let nf = n as f64;
    let mut put = |i: usize, (z, wi): (f64, f64)| {
        x[n - 1 - i] = z;
        x[i] = -z;
        w[n - 1 - i] = wi;
        w[i] = wi;
    };
    // The i-th largest root is cos θ_i, θ_i ≈ π(i + ¾)/(n + ½) (Tricomi).
    let guess = |i: usize| std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5);
    let interior = (n > RECURRENCE_ONLY_MAX_N).then(|| Interior::new(n));
    let by_recurrence: Vec<usize> = (0..n.div_ceil(2))
        .take_while(|&i| interior.is_none() || nf * guess(i).sin() < INTERIOR_MIN_N_SIN)
        .collect();
    let starts: Vec<f64> = by_recurrence.iter().map(|&i| guess(i).cos()).collect();
    for (&i, root) in by_recurrence.iter().zip(newton_recurrence(n, &starts)) {
        put(i, root);
    }
    if let Some(a) = &interior {
        for i in by_recurrence.len()..n.div_ceil(2) {
            put(i, a.root(guess(i)));
        }
    }
    if n % 2 == 1 {
        x[n / 2] = 0.0;
    }
    (x, w)
}

/// Up to this many nodes, every node comes from the recurrence (as attrib always computed them).
const RECURRENCE_ONLY_MAX_N: usize = 100;
/// Nodes with `n·sin θ` at least this use the interior expansion.
const INTERIOR_MIN_N_SIN: f64 = 30.0;
/// Terms of the interior expansion.
pub const INTERIOR_TERMS: usize = 20;
/// The interior expansion stops at the first term below this share of the leading term.
const INTERIOR_TOLERANCE: f64 = 1e-18;

/// The roots of `P_n` nearest each of `starts` and their weights, by Newton's method on `P_n`
/// evaluated by the three-term recurrence (O(n) per evaluation; the roots go through the
/// recurrence side by side, each until its own Newton step is below 1e-16).
fn newton_recurrence(n: usize, starts: &[f64]) -> Vec<(f64, f64)> {
    let mut z = starts.to_vec();
    let mut active: Vec<usize> = (0..z.len()).collect();
    for _ in 0..100 {
        if active.is_empty() {
            break;
        }
        let at: Vec<f64> = active.iter().map(|&j| z[j]).collect();
        let values = legendre_recurrence(n, &at);
        active = active
            .into_iter()
            .zip(values)
            .filter_map(|(j, (p, dp))| {
                let dz = p / dp;
                z[j] -= dz;
                (dz.abs() >= 1e-16).then_some(j)
            })
            .collect();
    }
    legendre_recurrence(n, &z).into_iter().zip(&z).map(|((_, dp), &z)| (z, 2.0 / ((1.0 - z * z) * dp * dp))).collect()
}

/// `P_n(z)` and `P_n'(z)` at each `z` by the three-term recurrence.
fn legendre_recurrence(n: usize, zs: &[f64]) -> Vec<(f64, f64)> {
    if n == 0 {
        return vec![(1.0, 0.0); zs.len()];
    }
    let nf = n as f64;
    let mut p0 = vec![1.0; zs.len()];
    let mut p1 = zs.to_vec();
    for k in 2..=n {
        let kf = k as f64;
        for ((&z, a), b) in zs.iter().zip(p0.iter_mut()).zip(p1.iter_mut()) {
            let p2 = ((2.0 * kf - 1.0) * z * *b - (kf - 1.0) * *a) / kf;
            *a = *b;
            *b = p2;
        }
    }
    zs.iter().zip(p0.iter().zip(&p1)).map(|(&z, (&p0, &p1))| (p1, nf * (z * p1 - p0) / (z * z - 1.0))).collect()
}

/// The interior asymptotic expansion of `P_n(cos θ)` for one `n`:
/// `P_n(cos θ) = C_n Σ_{m<M} h_m cos(α_m) / (2 sin θ)^{m+½}`, `α_m = (n + m + ½)θ − (m + ½)π/2`,
/// `h_0 = 1`, `h_m = h_{m−1} (m − ½)² / (m (n + m + ½))`, `C_n = (2/√π) Γ(n + 1)/Γ(n + 3/2)`.
struct Interior {
    n: f64,
    h: [f64; INTERIOR_TERMS],
    c_n: f64,
}

impl Interior {
    fn new(n: usize) -> Interior {
        let nf = n as f64;
        let mut h = [1.0; INTERIOR_TERMS];
        for m in 1..INTERIOR_TERMS {
            let mf = m as f64;
            h[m] = h[m - 1] * (mf - 0.5) * (mf - 0.5) / (mf * (nf + mf + 0.5));
        }
        // Γ(n + 1)/Γ(n + ½) = √n (1 + 1/(8n) + 1/(128n²) − 5/(1024n³) − 21/(32768n⁴)
        // + 399/(262144n⁵) + 869/(4194304n⁶) + O(n⁻⁷)); the dropped term is below 2e-17
        // relative for n > 100.
        let r = 1.0 / nf;
        let series = 1.0
            + r * (1.0 / 8.0
                + r * (1.0 / 128.0 + r * (-5.0 / 1024.0 + r * (-21.0 / 32768.0 + r * (399.0 / 262144.0 + r * (869.0 / 4194304.0))))));
        let ratio = nf.sqrt() * series / (nf + 0.5);
        Interior { n: nf, h, c_n: 2.0 / std::f64::consts::PI.sqrt() * ratio }
    }

    /// `P_n(cos θ)` and `dP_n(cos θ)/dθ`, both divided by `C_n`.
    fn eval(&self, theta: f64) -> (f64, f64) {
        let (s, c) = theta.sin_cos();
        let two_s = 2.0 * s;
        let cot = c / s;
        let (mut sa, mut ca) = ((self.n + 0.5) * theta - std::f64::consts::FRAC_PI_4).sin_cos();
        let mut pow = 1.0 / two_s.sqrt();
        let small = INTERIOR_TOLERANCE * pow;
        let (mut p, mut dp) = (0.0, 0.0);
        for (m, &hm) in self.h.iter().enumerate() {
            let mh = m as f64 + 0.5;
            let term = hm * pow;
            p += term * ca;
            dp -= term * ((self.n + mh) * sa + mh * cot * ca);
            if term < small {
                break;
            }
            // α_{m+1} = α_m + θ − π/2.
            (ca, sa) = (ca * s + sa * c, sa * s - ca * c);
            pow /= two_s;
        }
        (p, dp)
    }

    /// The root of `P_n(cos θ)` near Tricomi's `theta = π(k − ¼)/(n + ½)` as `cos θ`, and its
    /// weight. The guess is first moved by the next term of the expansion of the roots,
    /// `cot θ / (8 (n + ½)²)`, which leaves an error of order `n⁻⁴`: one Newton step is usually
    /// enough, two at most in practice.
    fn root(&self, theta: f64) -> (f64, f64) {
        let half = self.n + 0.5;
        let mut theta = theta + theta.cos() / (theta.sin() * 8.0 * half * half);
        for _ in 0..10 {
            let (p, dp) = self.eval(theta);
            let step = p / dp;
            theta -= step;
            if step.abs() <= 1e-15 * theta {
                break;
            }
        }
        let (_, dp) = self.eval(theta);
        let d = self.c_n * dp;
        (theta.cos(), 2.0 / (d * d))
    }
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

    /// The rule with every node from the recurrence (how attrib computed every rule before the
    /// interior expansion).
    fn recurrence_rule(n: usize) -> (Vec<f64>, Vec<f64>) {
        let starts: Vec<f64> = (0..n.div_ceil(2)).map(|i| (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos()).collect();
        let mut x = vec![0.0; n];
        let mut w = vec![0.0; n];
        for (i, (z, wi)) in newton_recurrence(n, &starts).into_iter().enumerate() {
            (x[n - 1 - i], x[i], w[n - 1 - i], w[i]) = (z, -z, wi, wi);
        }
        if n % 2 == 1 {
            x[n / 2] = 0.0;
        }
        (x, w)
    }

    #[test]
    fn gauss_legendre_agrees_with_the_recurrence_up_to_1000_nodes() {
        let sizes = (1..=200).chain((201..1000).step_by(13)).chain([1000]);
        for n in sizes {
            let (x, w) = gauss_legendre(n);
            let (xr, wr) = recurrence_rule(n);
            if n <= RECURRENCE_ONLY_MAX_N {
                assert_eq!((&x, &w), (&xr, &wr), "n={n}: the same bits as the recurrence");
            }
            // On [0, 1], as IG uses them.
            for k in 0..n {
                let (a, ar) = (0.5 * (1.0 + x[k]), 0.5 * (1.0 + xr[k]));
                assert!((a - ar).abs() <= 1e-12, "n={n} node {k}: {a} vs {ar}");
                assert!((0.5 * w[k] - 0.5 * wr[k]).abs() <= 1e-12, "n={n} weight {k}: {} vs {}", w[k], wr[k]);
            }
        }
    }

    #[test]
    fn a_hundred_thousand_nodes_form_a_gauss_rule() {
        let n = 100_000;
        let (a, w) = Quadrature::GaussLegendre.nodes(n).unwrap();
        assert_eq!((a.len(), w.len()), (n, n));
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-13, "weights sum to {}", w.iter().sum::<f64>());
        assert!(a[0] > 0.0 && a[n - 1] < 1.0 && a.windows(2).all(|p| p[0] < p[1]), "nodes ascend inside (0, 1)");
        assert!(w.iter().all(|&w| w > 0.0));
        for k in 0..n {
            assert!((a[k] + a[n - 1 - k] - 1.0).abs() < 1e-15 && w[k] == w[n - 1 - k], "symmetric at {k}");
        }
        // Exact for polynomials (degree ≤ 2n − 1) and accurate for an oscillating integrand:
        // ∫₀¹ α⁹ = 1/10, ∫₀¹ cos(1000 α) = sin(1000)/1000.
        let i9: f64 = a.iter().zip(&w).map(|(a, w)| w * a.powi(9)).sum();
        assert!((i9 - 0.1).abs() < 1e-13, "{i9}");
        let ic: f64 = a.iter().zip(&w).map(|(a, w)| w * (1000.0 * a).cos()).sum();
        assert!((ic - 1000f64.sin() / 1000.0).abs() < 1e-13, "{ic}");
        // Interior nodes equal the recurrence's roots.
        let (x, _) = gauss_legendre(n);
        for i in [9usize, 10, 500, n / 4, n / 2 - 1] {
            let start = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            let (z, _) = newton_recurrence(n, &[start])[0];
            assert!((x[n - 1 - i] - z).abs() < 1e-15, "root {i}: {} vs {z}", x[n - 1 - i]);
        }
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
