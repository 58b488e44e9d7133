//! Fast seeded noise on the host, and infidelity's perturbed rows built in the same pass.
//!
//! Normal draws use the ziggurat method (Marsaglia and Tsang 2000) with 256 layers over the
//! per-row keyed streams of [`attrib_tensor::rng::Rng`]: about one 64-bit draw and a few
//! multiplications per value, where the Box–Muller transform of [`attrib_tensor::rng`] takes a
//! logarithm, a square root and a sine per pair. Each row's stream is keyed by
//! `(seed, input, copy, sample)` as everywhere in attrib, so the values do not depend on how the
//! rows are chunked.
//!
//! [`fill_perturbed`] writes, for a range of rows of an expanded batch, the perturbed inputs
//! `x̃ = x − ε` directly (no noise tensor, no expanded copy of `x`) and the dot products
//! `Σ_e w_e ε_e` with per-sample weights `w` (infidelity's `Σ Φ·I`, see
//! [`crate::infidelity`]), on the calling thread.

use crate::perturb::Noise;
use attrib_core::{AttribError, Result, TorchResultExt};
use attrib_tensor::rng::Rng;
use attrib_tensor::rows::{block_of, sample_of};
use std::ops::Range;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// Layers of the ziggurat.
const LAYERS: usize = 256;
/// Start of the tail: the right edge of the base layer's rectangle.
const TAIL: f64 = 3.654_152_885_361_009;
/// The area of every layer (under the unnormalised density `exp(-x²/2)`).
const AREA: f64 = 0.004_928_673_233_99;

/// Layer edges `x[i]` (decreasing, `x[LAYERS] = 0`; `x[0]` is the base layer's virtual width
/// `AREA / f(TAIL)`) and the density at each edge.
struct Tables {
    x: [f64; LAYERS + 1],
    f: [f64; LAYERS + 1],
}

fn density(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut x = [0.0; LAYERS + 1];
        x[0] = AREA / density(TAIL);
        x[1] = TAIL;
        // Layer i spans heights f(x[i])..f(x[i+1]) with width x[i] and area AREA.
        for i in 1..LAYERS {
            let y = density(x[i]) + AREA / x[i];
            x[i + 1] = if y >= 1.0 { 0.0 } else { (-2.0 * y.ln()).sqrt() };
        }
        x[LAYERS] = 0.0;
        let mut f = [0.0; LAYERS + 1];
        for (fi, xi) in f.iter_mut().zip(&x) {
            *fi = density(*xi);
        }
        Tables { x, f }
    })
}

/// A standard normal draw from `rng` (ziggurat).
fn normal(rng: &mut Rng, t: &Tables) -> f64 {
    loop {
        let bits = rng.next_u64();
        let layer = (bits & 0xFF) as usize;
        // Uniform in [-1, 1) from the 53 high bits (independent of the layer's 8 low bits).
        let u = (bits >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0;
        let x = u * t.x[layer];
        if x.abs() < t.x[layer + 1] {
            return x;
        }
        if layer == 0 {
            // The tail beyond TAIL (Marsaglia 1964).
            loop {
                let a = -(1.0 - rng.uniform()).ln() / TAIL;
                let b = -(1.0 - rng.uniform()).ln();
                if 2.0 * b >= a * a {
                    return if u < 0.0 { -(TAIL + a) } else { TAIL + a };
                }
            }
        }
        // Between the rectangles: accept under the density.
        let y = t.f[layer] + (t.f[layer + 1] - t.f[layer]) * rng.uniform();
        if y < density(x) {
            return x;
        }
    }
}

/// One noise value of `noise` from `rng`.
#[inline]
fn draw(noise: Noise, rng: &mut Rng, t: &Tables) -> f64 {
    match noise {
        Noise::Gaussian { stdev } => normal(rng, t) * stdev,
        Noise::Uniform { radius } => (2.0 * rng.uniform() - 1.0) * radius,
    }
}

/// The generator of row `r` of input `input` of an expanded batch over `n` samples.
fn row_rng(seed: u64, input: usize, r: i64, n: i64) -> Rng {
    Rng::keyed(seed, &[input as u64, block_of(r, n) as u64, sample_of(r, n) as u64])
}

/// Floating-point element types the host fill writes.
pub trait Elem: Copy + Send + Sync + tch::kind::Element {
    /// From a float64 value (rounded to nearest).
    fn of(v: f64) -> Self;
    /// To float64.
    fn wide(self) -> f64;
    /// `self − other` in this type.
    fn minus(self, other: Self) -> Self;
}

impl Elem for f32 {
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn wide(self) -> f64 {
        self as f64
    }
    fn minus(self, other: f32) -> f32 {
        self - other
    }
}

impl Elem for f64 {
    fn of(v: f64) -> f64 {
        v
    }
    fn wide(self) -> f64 {
        self
    }
    fn minus(self, other: f64) -> f64 {
        self - other
    }
}

/// Run `work(0, out, extra)` over all rows on the calling thread.
///
/// Not split over threads: libtorch's OpenMP workers spin for a while after each parallel
/// region, and threads of our own next to them made infidelity 2–3× slower on the shared
/// 2-core machine (measured, 100 perturbations of 16 images 3×32×32, one fill thread against
/// two, interleaved: 264–507 ms against 647–1060 ms per call).
fn split_rows<T: Send>(out: &mut [T], _per_row: usize, extra: &mut [f64], work: impl Fn(usize, &mut [T], &mut [f64]) + Sync) {
    work(0, out, extra);
}

/// Noise of rows `rows` of input `input` of an expanded batch over the samples of `like`
/// (`[N, ...]`: that input), as a `[rows.len(), ...]` tensor of `like`'s dtype (float32 or
/// float64; others are converted from float64) on its device.
pub fn noise_rows(noise: Noise, seed: u64, input: usize, like: &Tensor, rows: Range<i64>) -> Result<Tensor> {
    let size = like.size();
    let (n, row_shape, kind, device) = (size[0], &size[1..], like.kind(), like.device());
    let per_row = row_shape.iter().product::<i64>().max(0) as usize;
    let count = (rows.end - rows.start).max(0) as usize;
    let mut shape = vec![count as i64];
    shape.extend_from_slice(row_shape);
    let fill = |out: &mut [f64]| {
        let t = tables();
        let mut none = vec![0.0; count];
        split_rows(out, per_row, &mut none, |first, o, _| {
            for (j, row) in o.chunks_mut(per_row.max(1)).enumerate() {
                let mut rng = row_rng(seed, input, rows.start + (first + j) as i64, n);
                for v in row.iter_mut() {
                    *v = draw(noise, &mut rng, t);
                }
            }
        });
    };
    let t = if kind == Kind::Float {
        let mut wide = vec![0.0f64; count * per_row];
        fill(&mut wide);
        let narrow: Vec<f32> = wide.iter().map(|&v| v as f32).collect();
        Tensor::f_from_slice(&narrow)
    } else {
        let mut wide = vec![0.0f64; count * per_row];
        fill(&mut wide);
        Tensor::f_from_slice(&wide).and_then(|t| t.f_to_kind(kind))
    };
    t.and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(device)).ctx("making a noise tensor")
}

/// Host copy of one input for [`fill_perturbed`]: its values, and per sample the weights `w`
/// of the dot products.
pub struct HostInput<T> {
    /// `x`, `[N · F]` row-major.
    pub x: Vec<T>,
    /// `w`, `[N · F]` row-major (float64).
    pub w: Vec<f64>,
    /// Values per row, `F`.
    pub per_row: usize,
    /// Samples, `N`.
    pub n: i64,
}

/// Read `x` and the weights `w` (both `[N, ...]`, any device) to the host.
pub fn host_input<T: Elem>(x: &Tensor, w: &Tensor) -> Result<HostInput<T>> {
    let n = x.size()[0];
    let per_row = x.size()[1..].iter().product::<i64>().max(0) as usize;
    let read = |t: &Tensor, kind: Kind| -> Result<Tensor> {
        t.f_to_device(Device::Cpu).and_then(|t| t.f_to_kind(kind)).and_then(|t| t.f_contiguous()).and_then(|t| t.f_reshape([-1])).ctx("reading inputs")
    };
    let xs = Vec::<T>::try_from(read(x, T::KIND)?).map_err(|e| AttribError::Conversion(e.to_string()))?;
    let ws = Vec::<f64>::try_from(read(w, Kind::Double)?).map_err(|e| AttribError::Conversion(e.to_string()))?;
    Ok(HostInput { x: xs, w: ws, per_row, n })
}

/// For rows `rows` of input `input` of the expanded batch: the perturbed rows `x̃ = x − ε` as a
/// host buffer (`[rows.len() · F]`), and `dots[j] += Σ_e w_e ε_e` for row `rows.start + j`.
pub fn fill_perturbed<T: Elem>(noise: Noise, seed: u64, input: usize, h: &HostInput<T>, rows: Range<i64>, dots: &mut [f64]) -> Vec<T> {
    let per_row = h.per_row;
    let count = (rows.end - rows.start).max(0) as usize;
    let mut out: Vec<T> = vec![T::of(0.0); count * per_row];
    let t = tables();
    split_rows(&mut out, per_row, &mut dots[..count], |first, o, d| {
        for (j, (row, dot)) in o.chunks_mut(per_row.max(1)).zip(d.iter_mut()).enumerate() {
            let r = rows.start + (first + j) as i64;
            let mut rng = row_rng(seed, input, r, h.n);
            let s = sample_of(r, h.n) as usize * per_row;
            let (x, w) = (&h.x[s..s + per_row], &h.w[s..s + per_row]);
            let mut acc = 0.0;
            for ((v, &xe), &we) in row.iter_mut().zip(x).zip(w) {
                let e = T::of(draw(noise, &mut rng, t));
                *v = xe.minus(e);
                acc += we * e.wide();
            }
            *dot += acc;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Φ(z), the standard normal CDF, at a few points (tabulated).
    const CDF: [(f64, f64); 6] =
        [(-3.0, 0.001_349_898), (-1.0, 0.158_655_254), (0.0, 0.5), (0.5, 0.691_462_461), (2.0, 0.977_249_868), (3.5, 0.999_767_371)];

    #[test]
    fn ziggurat_layers_close_at_zero() {
        let t = tables();
        // The recursion from the tail start must reach the top: the last computed edge is small
        // and the layer above it fills the rest of the density's area.
        assert!(t.x[LAYERS - 1] > 0.0 && t.x[LAYERS - 1] < 0.25, "{}", t.x[LAYERS - 1]);
        assert!((t.x[LAYERS - 1] * (1.0 - t.f[LAYERS - 1]) - AREA).abs() < 1e-3 * AREA);
        assert!(t.x.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn ziggurat_draws_are_standard_normal() {
        let mut rng = Rng::new(11);
        let t = tables();
        let n = 400_000;
        let xs: Vec<f64> = (0..n).map(|_| normal(&mut rng, t)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        assert!(mean.abs() < 0.006, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        // The empirical CDF within 4 standard errors of Φ, tail points included.
        for (z, p) in CDF {
            let got = xs.iter().filter(|&&x| x <= z).count() as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((got - p).abs() < 4.0 * se + 1e-6, "P(X <= {z}) = {got}, want {p}");
        }
        assert!(xs.iter().any(|&x| x.abs() > TAIL), "no draw from the tail");
    }

    #[test]
    fn rows_do_not_depend_on_ranges() {
        let noise = Noise::Gaussian { stdev: 0.5 };
        let like = Tensor::zeros([4, 3, 700], (Kind::Double, Device::Cpu));
        let all = noise_rows(noise, 3, 1, &like, 0..40).unwrap();
        let parts: Vec<Tensor> = [0..5, 5..6, 6..40].into_iter().map(|r| noise_rows(noise, 3, 1, &like, r).unwrap()).collect();
        assert!(all.equal(&Tensor::cat(&parts, 0)));
        let other = noise_rows(noise, 4, 1, &like, 0..40).unwrap();
        assert!(!all.equal(&other));
        // The fused fill draws the same noise: x − x̃ = ε, and the dots are Σ w ε.
        let x = Tensor::rand([4, 3, 700], (Kind::Double, Device::Cpu));
        let w = Tensor::randn([4, 3, 700], (Kind::Double, Device::Cpu));
        let h = host_input::<f64>(&x, &w).unwrap();
        let mut dots = vec![0.0; 40];
        let xt = fill_perturbed(noise, 3, 1, &h, 0..40, &mut dots);
        let xt = Tensor::from_slice(&xt).reshape([40, 3, 700]);
        let xs = x.repeat([10, 1, 1]);
        assert!((&xs - &xt - &all).abs().max().double_value(&[]) < 1e-15);
        let want = Vec::<f64>::try_from((&all * w.repeat([10, 1, 1])).sum_dim_intlist([1, 2].as_slice(), false, Kind::Double)).unwrap();
        for (g, w) in dots.iter().zip(&want) {
            assert!((g - w).abs() < 1e-10, "{g} vs {w}");
        }
        // Uniform noise stays in its ball.
        let u = noise_rows(Noise::Uniform { radius: 0.2 }, 1, 0, &Tensor::zeros([4, 50], (Kind::Float, Device::Cpu)), 0..8).unwrap();
        assert!(u.abs().max().double_value(&[]) <= 0.2);
    }
}
