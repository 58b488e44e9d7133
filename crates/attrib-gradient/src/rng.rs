//! The seeded random stream of the sampling methods (NoiseTunnel, GradientSHAP).
//!
//! attrib draws its noise, baseline indices and path coefficients on the host from its own
//! generator (xoshiro256++ seeded through SplitMix64; normals by the Box–Muller transform), then
//! copies them to the model's device. The stream depends only on the seed: it does not touch
//! libtorch's global generator (`tch::manual_seed`), is the same on CPU and CUDA and across
//! thread counts, and two calls with the same seed give the same result. It is *not* Captum's
//! stream (Captum uses `torch.normal` and `numpy.random`); parity tests inject the same draws
//! on both sides instead.

use attrib_core::{Result, TorchResultExt};
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
        Tensor::from_slice(&values)
            .f_reshape(shape)
            .and_then(|t| t.f_to_kind(kind))
            .and_then(|t| t.f_to_device(device))
            .ctx("making a noise tensor")
    }
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
}
