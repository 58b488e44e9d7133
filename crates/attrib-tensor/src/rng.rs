//! The seeded random stream of the sampling methods (NoiseTunnel, GradientSHAP, the attacks of
//! `attrib-robust`).
//!
//! attrib draws its noise, baseline indices and path coefficients on the host from its own
//! generator (xoshiro256++ seeded through SplitMix64; normals by the Box–Muller transform), then
//! copies them to the model's device. The stream depends only on the seed: it does not touch
//! libtorch's global generator (`tch::manual_seed`), is the same on CPU and CUDA and across
//! thread counts, and two calls with the same seed give the same result. It is *not* Captum's
//! stream (Captum uses `torch.normal` and `numpy.random`); parity tests inject the same draws
//! on both sides instead.
//!
//! Noise of expanded batches is drawn **per row**: row `r` of input `k` (copy `r / n` of sample
//! `r % n`, the evaluator's row layout) gets its own generator keyed by `(seed, k, copy, sample)`
//! ([`Rng::keyed`], [`normal_rows`]). Any range of rows can then be drawn on its own, chunk by
//! chunk inside the memory budget, and the values do not depend on how the rows are chunked.

use attrib_core::{Result, TorchResultExt};
use crate::rows::{block_of, sample_of};
use std::ops::Range;
use tch::{Device, Kind, Tensor};

/// A small, fast, seedable generator (xoshiro256++).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut st = seed;
        let s = [splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st)];
        Rng { s, spare: None }
    }

    /// A generator for one key (for example input, copy and sample of a row) under `seed`: its
    /// stream depends only on `seed` and `key`, so keyed streams can be drawn in any order.
    pub fn keyed(seed: u64, key: &[u64]) -> Rng {
        let mut st = seed;
        let mut h = splitmix64(&mut st);
        for &k in key {
            let mut t = h ^ k;
            h = splitmix64(&mut t);
        }
        Rng::new(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..k` (`k >= 1`), without modulo bias (Lemire's method).
    pub fn below(&mut self, k: u64) -> u64 {
        let mut m = (self.next_u64() as u128) * (k as u128);
        if (m as u64) < k {
            let t = k.wrapping_neg() % k;
            while (m as u64) < t {
                m = (self.next_u64() as u128) * (k as u128);
            }
        }
        (m >> 64) as u64
    }

    /// A standard normal draw (Box–Muller, both values used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// A tensor of `shape` with independent `N(0, stdev²)` entries, of `kind` on `device`.
    pub fn normal_tensor(&mut self, shape: &[i64], stdev: f64, kind: Kind, device: Device) -> Result<Tensor> {
        let count: i64 = shape.iter().product();
        let values: Vec<f64> = (0..count).map(|_| self.normal() * stdev).collect();
        Tensor::f_from_slice(&values)
            .and_then(|t| t.f_reshape(shape))
            .and_then(|t| t.f_to_kind(kind))
            .and_then(|t| t.f_to_device(device))
            .ctx("making a noise tensor")
    }
}

/// `N(0, stdev²)` noise for rows `rows` of input `input` of an expanded batch over `n` samples,
/// each row shaped `row_shape` (without the batch dimension): `[rows.len(), ...row_shape]` of
/// `kind` on `device`. Row `r` is drawn from [`Rng::keyed`]`(seed, [input, r / n, r % n])`, so
/// the noise of a row is the same whichever range it is drawn in.
pub fn normal_rows(seed: u64, input: usize, rows: Range<i64>, n: i64, row_shape: &[i64], stdev: f64, kind: Kind, device: Device) -> Result<Tensor> {
    let per_row = row_shape.iter().product::<i64>().max(0) as usize;
    let count = (rows.end - rows.start).max(0);
    let mut values: Vec<f64> = Vec::with_capacity(count as usize * per_row);
    for r in rows {
        let mut rng = Rng::keyed(seed, &[input as u64, block_of(r, n) as u64, sample_of(r, n) as u64]);
        values.extend((0..per_row).map(|_| rng.normal() * stdev));
    }
    let mut shape = vec![count];
    shape.extend_from_slice(row_shape);
    Tensor::f_from_slice(&values)
        .and_then(|t| t.f_reshape(&shape))
        .and_then(|t| t.f_to_kind(kind))
        .and_then(|t| t.f_to_device(device))
        .ctx("making a noise tensor")
}

/// `U[0, 1)` draws for rows `rows` of input `input` of an expanded batch over `n` samples, keyed
/// per row exactly as [`normal_rows`] keys them: `[rows.len(), ...row_shape]` of `kind` on
/// `device`.
pub fn uniform_rows(seed: u64, input: usize, rows: Range<i64>, n: i64, row_shape: &[i64], kind: Kind, device: Device) -> Result<Tensor> {
    let per_row = row_shape.iter().product::<i64>().max(0) as usize;
    let count = (rows.end - rows.start).max(0);
    let mut values: Vec<f64> = Vec::with_capacity(count as usize * per_row);
    for r in rows {
        let mut rng = Rng::keyed(seed, &[input as u64, block_of(r, n) as u64, sample_of(r, n) as u64]);
        values.extend((0..per_row).map(|_| rng.uniform()));
    }
    let mut shape = vec![count];
    shape.extend_from_slice(row_shape);
    Tensor::f_from_slice(&values)
        .and_then(|t| t.f_reshape(&shape))
        .and_then(|t| t.f_to_kind(kind))
        .and_then(|t| t.f_to_device(device))
        .ctx("making a uniform noise tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_moments_are_right() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!((0..10).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..10).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut r = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        let us: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        assert!(us.iter().all(|u| (0.0..1.0).contains(u)));
        assert!((us.iter().sum::<f64>() / n as f64 - 0.5).abs() < 0.01);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[r.below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }

    #[test]
    fn row_noise_does_not_depend_on_the_range_it_is_drawn_in() {
        let all = normal_rows(3, 1, 0..12, 4, &[2, 3], 0.5, Kind::Double, Device::Cpu).unwrap();
        let parts: Vec<Tensor> =
            [0..5, 5..6, 6..12].into_iter().map(|r| normal_rows(3, 1, r, 4, &[2, 3], 0.5, Kind::Double, Device::Cpu).unwrap()).collect();
        assert!(all.equal(&Tensor::cat(&parts, 0)));
        assert_eq!(all.size(), vec![12, 2, 3]);
        // Other seeds, inputs and rows give other draws.
        let other = normal_rows(4, 1, 0..12, 4, &[2, 3], 0.5, Kind::Double, Device::Cpu).unwrap();
        assert!(!all.equal(&other));
        let input0 = normal_rows(3, 0, 0..12, 4, &[2, 3], 0.5, Kind::Double, Device::Cpu).unwrap();
        assert!(!all.equal(&input0));
        assert!(!all.get(0).equal(&all.get(1)) && !all.get(0).equal(&all.get(4)));
        let sd = f64::try_from(normal_rows(9, 0, 0..400, 20, &[50], 2.0, Kind::Double, Device::Cpu).unwrap().std(true)).unwrap();
        assert!((sd - 2.0).abs() < 0.05, "{sd}");
    }
}
