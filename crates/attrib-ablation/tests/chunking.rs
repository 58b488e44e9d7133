//! The result does not depend on how the perturbed rows are chunked.

use attrib_ablation::{FeatureAblation, FeaturePermutation, Occlusion};
use attrib_core::{Attribution, BatchOptions, FeatureMask, FnModel, Inputs, Target};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

fn model_weights(seed: i64, m: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    (Tensor::randn([m, 5], (Kind::Double, Device::Cpu)), Tensor::randn([5, 3], (Kind::Double, Device::Cpu)))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn attributions_do_not_depend_on_the_chunk_size(
        n in 2i64..5, h in 2i64..5, w in 2i64..6, patch in 1i64..3, chunk in 1usize..40, seed in 0i64..1000,
    ) {
        let (w1, w2) = model_weights(seed, h * w);
        let model = FnModel::new(|x: &Tensor| x.flatten(1, -1).matmul(&w1).tanh().matmul(&w2));
        tch::manual_seed(seed + 1);
        let x = Tensor::randn([n, h, w], (Kind::Double, Device::Cpu));
        let inputs = Inputs::new(x);
        let target = Target::Class(seed % 3);
        let fixed = BatchOptions::with_max_batch(chunk);

        let fa = |b: BatchOptions| FeatureAblation::params()
            .feature_mask(FeatureMask::grid(h, w, patch, patch).unwrap())
            .batch(b).check().unwrap()
            .attribute(&model, &inputs, &target).unwrap().values.remove(0);
        prop_assert!(max_diff(&fa(fixed), &fa(BatchOptions::default())) < 1e-12);

        let oc = |b: BatchOptions| Occlusion::params().window(&[patch, patch]).stride(&[1, patch])
            .batch(b).check().unwrap()
            .attribute(&model, &inputs, &target).unwrap().values.remove(0);
        prop_assert!(max_diff(&oc(fixed), &oc(BatchOptions::default())) < 1e-12);

        let fp = |b: BatchOptions| FeaturePermutation::params().seed(seed as u64)
            .batch(b).check().unwrap()
            .attribute(&model, &inputs, &target).unwrap().values.remove(0);
        prop_assert!(max_diff(&fp(fixed), &fp(BatchOptions::default())) < 1e-12);
    }
}
