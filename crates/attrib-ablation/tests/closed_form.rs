//! Closed forms on linear models, computed here element by element (independently of the
//! implementation's tensor code), and the errors for bad input.

use attrib_ablation::{FeatureAblation, FeaturePermutation, Occlusion};
use attrib_core::{Attribution, Baseline, Baselines, FeatureMask, FnModel, Inputs, Target};
use tch::{Device, Kind, Tensor};

const D: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Deterministic pseudo-random values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(seed: u64, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    Tensor::from_slice(&values(seed, n as usize)).reshape(shape)
}

fn host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

/// `F(x) = flatten(x) · W`, W `[m, classes]`.
fn linear(w: &Tensor) -> FnModel<'_> {
    FnModel::new(move |x: &Tensor| x.flatten(1, -1).matmul(w))
}

fn assert_vec_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-10 * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
    }
}

#[test]
fn ablation_on_a_linear_model_is_w_times_x_minus_b_summed_per_group() {
    let (n, c, h, wd) = (4i64, 2i64, 3i64, 4i64);
    let m = (c * h * wd) as usize;
    let x = tensor(1, &[n, c, h, wd]);
    let b = tensor(2, &[1, c, h, wd]);
    let w = tensor(3, &[m as i64, 3]);
    let targets = vec![0i64, 2, 1, 2];
    let model = linear(&w);
    let grid = FeatureMask::grid(h, wd, 2, 2).unwrap(); // [H, W] groups shared by channels
    let method = FeatureAblation::params()
        .baselines(Baseline::Tensor(b.shallow_clone()))
        .feature_mask(grid)
        .check()
        .unwrap();
    let attr = method.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::PerSample(targets.clone())).unwrap();
    let got = host(attr.single().unwrap());

    let (xv, bv, wv) = (host(&x), host(&b), host(&w));
    let group_of = |e: usize| {
        let r = (e / wd as usize) % h as usize;
        let col = e % wd as usize;
        (r / 2) * 2 + col / 2
    };
    let mut expected = vec![0.0; n as usize * m];
    for i in 0..n as usize {
        let t = targets[i] as usize;
        let mut per_group = [0.0f64; 4];
        for e in 0..m {
            per_group[group_of(e)] += wv[e * 3 + t] * (xv[i * m + e] - bv[e]);
        }
        for e in 0..m {
            expected[i * m + e] = per_group[group_of(e)];
        }
    }
    assert_vec_close(&got, &expected, "grouped ablation");

    // No mask: each scalar its own group, zero baseline: w_e x_e.
    let plain = FeatureAblation::params().check().unwrap();
    let got = host(plain.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap().single().unwrap());
    let expected: Vec<f64> = (0..n as usize * m).map(|k| wv[(k % m) * 3 + 1] * xv[k]).collect();
    assert_vec_close(&got, &expected, "per-element ablation");
}

#[test]
fn per_row_masks_and_scalar_baseline() {
    let (n, m) = (3i64, 6usize);
    let x = tensor(4, &[n, m as i64]);
    let w = tensor(5, &[m as i64, 2]);
    let ids: Vec<i64> = vec![0, 0, 1, 1, 2, 2, 5, 1, 1, 5, 0, 0, 7, 7, 7, 7, 7, 3];
    let mask = FeatureMask::new(Tensor::from_slice(&ids).reshape([n, m as i64])).unwrap();
    let model = linear(&w);
    let method = FeatureAblation::params().baselines(Baseline::Scalar(0.5)).feature_mask(mask).check().unwrap();
    let got = host(method.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(1)).unwrap().single().unwrap());
    let (xv, wv) = (host(&x), host(&w));
    let mut expected = vec![0.0; n as usize * m];
    for i in 0..n as usize {
        for e in 0..m {
            let g = ids[i * m + e];
            expected[i * m + e] =
                (0..m).filter(|&f| ids[i * m + f] == g).map(|f| wv[f * 2 + 1] * (xv[i * m + f] - 0.5)).sum();
        }
    }
    assert_vec_close(&got, &expected, "per-row masks");
}

#[test]
fn a_group_shared_by_two_inputs_is_ablated_jointly() {
    let n = 2i64;
    let a = tensor(6, &[n, 3]);
    let b = tensor(7, &[n, 2]);
    let wa = tensor(8, &[3, 1]);
    let wb = tensor(9, &[2, 1]);
    let model = FnModel::multi(|xs: &[Tensor]| (xs[0].matmul(&wa) + xs[1].matmul(&wb)).squeeze_dim(1));
    let ma = FeatureMask::new(Tensor::from_slice(&[0i64, 1, 1])).unwrap();
    let mb = FeatureMask::new(Tensor::from_slice(&[1i64, 2])).unwrap();
    let method = FeatureAblation::params().feature_masks(vec![ma, mb]).check().unwrap();
    let attr = method.attribute(&model, &Inputs::multi(vec![a.shallow_clone(), b.shallow_clone()]), &Target::None).unwrap();
    let (av, bv, wav, wbv) = (host(&a), host(&b), host(&wa), host(&wb));
    let mut ea = vec![0.0; 6];
    let mut eb = vec![0.0; 4];
    for i in 0..2 {
        let g0 = wav[0] * av[i * 3];
        let g1 = wav[1] * av[i * 3 + 1] + wav[2] * av[i * 3 + 2] + wbv[0] * bv[i * 2];
        let g2 = wbv[1] * bv[i * 2 + 1];
        ea[i * 3..i * 3 + 3].copy_from_slice(&[g0, g1, g1]);
        eb[i * 2..i * 2 + 2].copy_from_slice(&[g1, g2]);
    }
    assert_vec_close(&host(&attr.values[0]), &ea, "input 0");
    assert_vec_close(&host(&attr.values[1]), &eb, "input 1");
}

#[test]
fn occlusion_on_a_linear_model_is_the_mean_over_covering_windows() {
    let (n, h, wd) = (2i64, 5i64, 7i64);
    let x = tensor(10, &[n, h, wd]);
    let w = tensor(11, &[h * wd, 1]);
    let model = FnModel::new(|t: &Tensor| t.flatten(1, -1).matmul(&w).squeeze_dim(1));
    let (wh, ww, sh, sw) = (2i64, 3i64, 2i64, 2i64);
    let method = Occlusion::params().window(&[wh, ww]).stride(&[sh, sw]).baselines(Baseline::Scalar(-0.25)).check().unwrap();
    let got = host(method.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::None).unwrap().single().unwrap());
    let (xv, wv) = (host(&x), host(&w));
    // Window starts: t·s for t = 0..=ceil((D - w) / s), cut at the border.
    let starts = |d: i64, win: i64, s: i64| -> Vec<(i64, i64)> {
        let c = ((d - win) as f64 / s as f64).ceil() as i64 + 1;
        (0..c).map(|t| (t * s, (t * s + win).min(d))).collect()
    };
    let m = (h * wd) as usize;
    let mut expected = vec![0.0; n as usize * m];
    for i in 0..n as usize {
        let mut sum = vec![0.0; m];
        let mut cnt = vec![0.0; m];
        for &(r0, r1) in &starts(h, wh, sh) {
            for &(c0, c1) in &starts(wd, ww, sw) {
                let mut delta = 0.0;
                for r in r0..r1 {
                    for c in c0..c1 {
                        let e = (r * wd + c) as usize;
                        delta += wv[e] * (xv[i * m + e] + 0.25);
                    }
                }
                for r in r0..r1 {
                    for c in c0..c1 {
                        let e = (r * wd + c) as usize;
                        sum[e] += delta;
                        cnt[e] += 1.0;
                    }
                }
            }
        }
        for e in 0..m {
            expected[i * m + e] = sum[e] / cnt[e];
        }
    }
    assert_vec_close(&got, &expected, "occlusion");
}

#[test]
fn permutation_on_a_linear_model_uses_the_given_permutation() {
    let (n, m) = (3i64, 4usize);
    let x = tensor(12, &[n, m as i64]);
    let w = tensor(13, &[m as i64, 2]);
    let model = linear(&w);
    let mask = FeatureMask::new(Tensor::from_slice(&[3i64, 3, 8, 9])).unwrap();
    let perms = vec![vec![1i64, 2, 0], vec![2, 0, 1], vec![0, 2, 1]]; // groups 3, 8, 9
    let method = FeaturePermutation::params().feature_mask(mask).permutations(perms.clone()).check().unwrap();
    let got = host(method.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)).unwrap().single().unwrap());
    let (xv, wv) = (host(&x), host(&w));
    let group = [0usize, 0, 1, 2];
    let mut expected = vec![0.0; n as usize * m];
    for i in 0..n as usize {
        for e in 0..m {
            let g = group[e];
            let src = perms[g][i] as usize;
            expected[i * m + e] =
                (0..m).filter(|&f| group[f] == g).map(|f| wv[f * 2] * (xv[i * m + f] - xv[src * m + f])).sum();
        }
    }
    assert_vec_close(&got, &expected, "permutation");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let w = Tensor::ones([4, 2], D);
    let model = linear(&w);
    let x = Tensor::ones([2, 4], D);
    let err = |r: attrib_core::Result<attrib_core::Attributions>| r.unwrap_err().to_string();

    let m = FeatureAblation::params().feature_mask(FeatureMask::new(Tensor::zeros([3], (Kind::Int64, Device::Cpu))).unwrap());
    let e = err(m.check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)));
    assert!(e.contains("feature mask does not fit"), "{e}");

    let two = FeatureAblation::params().feature_masks(vec![
        FeatureMask::new(Tensor::zeros([4], (Kind::Int64, Device::Cpu))).unwrap(),
        FeatureMask::new(Tensor::zeros([4], (Kind::Int64, Device::Cpu))).unwrap(),
    ]);
    let e = err(two.check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)));
    assert!(e.contains("one mask per input"), "{e}");

    let e = err(Occlusion::params().window(&[2, 2]).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)));
    assert!(e.contains("one size per dimension"), "{e}");
    let e = err(Occlusion::params().window(&[5]).check().unwrap().attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)));
    assert!(e.contains("larger than input"), "{e}");
    let e = Occlusion::params().window(&[2]).stride(&[0]).check().unwrap_err().to_string();
    assert!(e.contains("strides"), "{e}");

    let one = Tensor::ones([1, 4], D);
    let e = err(FeaturePermutation::params().check().unwrap().attribute(&model, &Inputs::new(one), &Target::Class(0)));
    assert!(e.contains("at least 2 rows"), "{e}");

    let e = err(FeaturePermutation::params()
        .permutations(vec![vec![0, 0]])
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)));
    assert!(e.contains("permutation"), "{e}");

    let e = err(FeatureAblation::params()
        .baselines(Baselines::from(Baseline::Tensor(Tensor::zeros([3], D))))
        .check()
        .unwrap()
        .attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Class(0)));
    assert!(e.contains("baseline"), "{e}");
}
