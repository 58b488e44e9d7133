//! Attacks against closed forms (a linear model), invariants on random small networks
//! (proptest: the ball, the bounds, the mask), the bundled digit CNN (success rises with ε,
//! the minimal ε flips the prediction and 5 % less does not), the comparator, and errors.

use attrib_core::{BatchOptions, FnModel, Inputs, Model, Target, TorchScriptModel};
use attrib_robust::comparator::accuracy;
use attrib_robust::{AttackComparator, Fgsm, Loss, LossKind, MinParamPerturbation, Norm, Perturbation, Pgd, SearchMode, Transform};
use proptest::prelude::*;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// Logits `[w·x, 0]`: class 1 is favoured where `w·x < 0`.
fn linear(w: &Tensor) -> FnModel<'static> {
    let w = w.shallow_clone();
    FnModel::new(move |x: &Tensor| {
        let z = x.matmul(&w.unsqueeze(1));
        Tensor::cat(&[z.shallow_clone(), z.zeros_like()], 1)
    })
}

fn w_and_x() -> (Tensor, Tensor) {
    let w = Tensor::from_slice(&[0.5f64, -2.0, 0.0, 1.0, -0.25]);
    let x = Tensor::from_slice(&[0.1f64, 0.2, -0.3, 0.4, 0.5, -1.0, 0.3, 0.0, 0.2, 0.9, 0.7, -0.6, 0.05, -0.2, 0.1]).reshape([3, 5]);
    (w, x)
}

#[test]
fn fgsm_on_a_linear_model_moves_each_feature_by_epsilon_sign_w() {
    let (w, x) = w_and_x();
    let model = linear(&w);
    let eps = 0.3;
    for labels in [vec![0i64, 1, 0], vec![1, 1, 0]] {
        // Cross-entropy of [w·x, 0]: label 1 climbs w·x, label 0 lowers it; a feature with
        // w = 0 has a zero gradient and stays.
        let out = Fgsm::params(eps).check().unwrap().perturb(&model, &Inputs::new(x.shallow_clone()), &Target::PerSample(labels.clone())).unwrap();
        assert_eq!(out.loss, LossKind::CrossEntropy);
        let dir = Tensor::from_slice(&labels.iter().map(|&l| if l == 1 { 1.0 } else { -1.0 }).collect::<Vec<f64>>()).unsqueeze(1);
        let expected = &x + dir * w.sign().unsqueeze(0) * eps;
        assert!(out.adversarial[0].allclose(&expected, 0.0, 1e-15, false), "{labels:?}");
        // Targeted towards the other class: the same move.
        let other: Vec<i64> = labels.iter().map(|l| 1 - l).collect();
        let t = Fgsm::params(eps).targeted(true).check().unwrap().perturb(&model, &Inputs::new(x.shallow_clone()), &Target::PerSample(other)).unwrap();
        assert!(t.adversarial[0].allclose(&expected, 0.0, 1e-15, false));
    }
}

#[test]
fn pgd_on_a_linear_model_walks_to_the_ball_and_stays() {
    let (w, x) = w_and_x();
    let model = linear(&w);
    let labels = Target::PerSample(vec![0, 1, 0]);
    let dir = Tensor::from_slice(&[-1.0f64, 1.0, -1.0]).unsqueeze(1);
    // L∞: 5 steps of 0.1 clamp at ε = 0.25 along sign(w).
    let out = Pgd::params(0.25).step_size(0.1).step_num(5).check().unwrap().perturb(&model, &Inputs::new(x.shallow_clone()), &labels).unwrap();
    let expected = &x + &dir * w.sign().unsqueeze(0) * 0.25;
    assert!(out.adversarial[0].allclose(&expected, 0.0, 1e-12, false));
    // L2: sign steps rescaled onto the sphere of radius 0.5: 0.5 · sign(w) / ‖sign(w)‖ (4
    // non-zero weights: norm 2), up to renorm's 1e-7.
    let out = Pgd::params(0.5).step_size(0.2).step_num(4).norm(Norm::L2).check().unwrap().perturb(&model, &Inputs::new(x.shallow_clone()), &labels).unwrap();
    let expected = &x + &dir * w.sign().unsqueeze(0) * 0.25;
    assert!(out.adversarial[0].allclose(&expected, 0.0, 1e-6, false));
    assert!(out.success.iter().all(|&s| !s) || out.success.iter().any(|&s| s)); // outcome computed for every row
    assert_eq!(out.success.len(), 3);
}

#[test]
fn probability_outputs_pick_captums_loss() {
    let (w, x) = w_and_x();
    let w2 = w.shallow_clone();
    let probs = FnModel::new(move |x: &Tensor| {
        let z = x.matmul(&w2.unsqueeze(1));
        Tensor::cat(&[z.shallow_clone(), z.zeros_like()], 1).softmax(1, Kind::Double)
    });
    let inputs = Inputs::new(x.shallow_clone());
    let t = Target::PerSample(vec![0, 1, 0]);
    let auto = Fgsm::params(0.1).check().unwrap().perturb(&probs, &inputs, &t).unwrap();
    assert_eq!(auto.loss, LossKind::NegLogProb);
    // On probabilities −log p is the cross-entropy of the logits: the same step.
    let logits = Fgsm::params(0.1).check().unwrap().perturb(&linear(&w), &inputs, &t).unwrap();
    assert!(auto.adversarial[0].allclose(&logits.adversarial[0], 0.0, 1e-15, false));
    let forced = Fgsm::params(0.1).loss(Loss::CrossEntropy).check().unwrap().perturb(&probs, &inputs, &t).unwrap();
    assert_eq!(forced.loss, LossKind::CrossEntropy);
}

fn random_mlp(seed: i64, d: i64, classes: i64) -> FnModel<'static> {
    tch::manual_seed(seed);
    let w1 = Tensor::randn([d, 8], (Kind::Double, Device::Cpu));
    let w2 = Tensor::randn([8, classes], (Kind::Double, Device::Cpu));
    FnModel::new(move |x: &Tensor| x.matmul(&w1).tanh().matmul(&w2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// On random networks: every PGD result lies in the ball, in the bounds, and masked
    /// elements never move; ε = 0 returns the (clamped) input; FGSM moves each element by 0 or ε.
    #[test]
    fn attacks_stay_in_the_ball_the_bounds_and_the_mask(seed in 0i64..1000, eps in 0.01f64..0.5, l2 in any::<bool>(), random_start in any::<bool>(), targeted in any::<bool>()) {
        let (d, classes, n) = (6, 3, 5);
        let model = random_mlp(seed, d, classes);
        tch::manual_seed(seed + 1);
        let x = Tensor::rand([n, d], (Kind::Double, Device::Cpu));
        let mask = Tensor::from_slice(&[1.0f64, 0.0, 1.0, 1.0, 0.0, 1.0]).unsqueeze(0);
        let labels = Target::PerSample((0..n).map(|i| (i + seed) % classes).collect());
        let norm = if l2 { Norm::L2 } else { Norm::Linf };
        let pgd = Pgd::params(eps).step_size(eps / 3.0).step_num(4).norm(norm).random_start(random_start).targeted(targeted)
            .bounds(0.0, 1.0).mask(vec![mask.shallow_clone()]).seed(seed as u64).check().unwrap();
        let out = pgd.perturb(&model, &Inputs::new(x.shallow_clone()), &labels).unwrap();
        let adv = &out.adversarial[0];
        let diff = adv - &x;
        let size = if l2 { diff.norm_scalaropt_dim(2.0, [1i64].as_slice(), false).max().double_value(&[]) } else { diff.abs().max().double_value(&[]) };
        prop_assert!(size <= eps * (1.0 + 1e-9), "{size} > {eps}");
        prop_assert!(adv.min().double_value(&[]) >= 0.0 && adv.max().double_value(&[]) <= 1.0);
        let fixed: Tensor = &diff * (mask.ones_like() - &mask);
        prop_assert_eq!(fixed.abs().max().double_value(&[]), 0.0);
        let zero = Pgd::params(0.0).step_num(2).check().unwrap().perturb(&model, &Inputs::new(x.shallow_clone()), &labels).unwrap();
        prop_assert!(zero.adversarial[0].equal(&x));
        let f = Fgsm::params(eps).check().unwrap().perturb(&model, &Inputs::new(x.shallow_clone()), &labels).unwrap();
        let moved = (&f.adversarial[0] - &x).abs();
        let ok = moved.le(1e-12).logical_or(&(&moved - eps).abs().le(1e-12)).all().int64_value(&[]);
        prop_assert_eq!(ok, 1);
    }
}

#[test]
fn chunked_and_seeded_runs_give_the_same_result() {
    let model = random_mlp(7, 6, 3);
    tch::manual_seed(3);
    let x = Tensor::rand([11, 6], (Kind::Double, Device::Cpu));
    let inputs = Inputs::new(x.shallow_clone());
    let small = BatchOptions { max_batch: Some(3), ..BatchOptions::default() };
    let pgd = |b: BatchOptions, seed: u64| Pgd::params(0.2).random_start(true).seed(seed).batch(b).check().unwrap().perturb(&model, &inputs, &Target::Argmax).unwrap();
    let a = pgd(BatchOptions::default(), 5);
    let b = pgd(small, 5);
    assert!(a.adversarial[0].equal(&b.adversarial[0]));
    assert!(a.adversarial[0].equal(&pgd(BatchOptions::default(), 5).adversarial[0]));
    assert!(!a.adversarial[0].equal(&pgd(BatchOptions::default(), 6).adversarial[0]));
    assert_eq!(a.before, a.labels, "argmax labels are the clean predictions");
}

fn digits() -> (TorchScriptModel, Tensor, Vec<i64>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/data");
    let model = TorchScriptModel::load(root.join("digits_cnn.pt"), Device::Cpu).unwrap();
    let x = attrib_tensor::convert::read_npy_tensor(root.join("digits.npy"), Device::Cpu).unwrap();
    let labels = attrib_tensor::convert::read_npy_i64(root.join("digits_labels.npy")).unwrap().iter().copied().collect();
    (model, x, labels)
}

#[test]
fn digit_cnn_attack_success_rises_with_epsilon() {
    let (model, x, labels) = digits();
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(labels);
    let rate = |eps: f64, pgd: bool| {
        if pgd {
            Pgd::params(eps).step_num(10).bounds(0.0, 1.0).check().unwrap().perturb(&model, &inputs, &target).unwrap().success_rate()
        } else {
            Fgsm::params(eps).bounds(0.0, 1.0).check().unwrap().perturb(&model, &inputs, &target).unwrap().success_rate()
        }
    };
    for pgd in [false, true] {
        let rates: Vec<f64> = [0.0, 0.05, 0.1, 0.2, 0.3].iter().map(|&e| rate(e, pgd)).collect();
        eprintln!("{} success by ε (0, .05, .1, .2, .3): {rates:?}", if pgd { "PGD" } else { "FGSM" });
        assert_eq!(rates[0], 0.0, "every digit is classified correctly");
        assert!(rates.windows(2).all(|w| w[1] >= w[0]), "{rates:?}");
        assert!(rates[4] >= 0.8 && rates[4] > rates[1], "{rates:?}");
    }
    // PGD is at least as strong as FGSM at the same ε.
    assert!(rate(0.1, true) >= rate(0.1, false));
}

#[test]
fn digit_cnn_minimal_epsilon_flips_and_five_percent_less_does_not() {
    let (model, x, labels) = digits();
    let fgsm = Fgsm::params(0.0).bounds(0.0, 1.0).check().unwrap();
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(labels.clone());
    let flips = |i: usize, eps: f64| {
        let out = fgsm.perturb_rows(&model, &Inputs::new(x.narrow(0, i as i64, 1)), &Target::Class(labels[i]), Some(&[eps])).unwrap();
        (out.success[0], out.adversarial)
    };
    // Binary search on a grid fine enough (2e-4) that 5 % below the smallest answer (≈ 0.007)
    // lies below the last grid value that did not flip.
    let binary = MinParamPerturbation::new(&fgsm, 0.0, 0.3, 0.0002).unwrap().mode(SearchMode::Binary);
    let found = binary.evaluate(&model, &inputs, &target).unwrap();
    assert!(found.values.iter().all(Option::is_some), "{:?}", found.values);
    for (i, v) in found.values.iter().enumerate() {
        let v = v.unwrap();
        let (flipped, adv) = flips(i, v);
        assert!(flipped, "row {i}: ε = {v} does not flip");
        assert!(adv[0].equal(&found.perturbed[0].narrow(0, i as i64, 1)));
        assert!(!flips(i, 0.95 * v).0, "row {i}: 0.95 · {v} already flips");
    }
    // Linear search on a coarser grid (1e-3, 50 values per round): its answer flips, the grid
    // value before it does not, and it is the binary answer rounded up to the grid.
    let step = 0.001;
    let linear = MinParamPerturbation::new(&fgsm, 0.0, 0.3, step).unwrap().perturbations_per_eval(50).unwrap();
    let coarse = linear.evaluate(&model, &inputs, &target).unwrap();
    for (i, (c, b)) in coarse.values.iter().zip(&found.values).enumerate() {
        let (c, b) = (c.unwrap(), b.unwrap());
        assert!(flips(i, c).0 && !flips(i, c - step).0, "row {i}: {c}");
        assert!(c >= b - 1e-9 && c <= b + step + 1e-9, "row {i}: linear {c}, binary {b}");
    }
}

#[test]
fn comparator_summarises_draws_per_perturbation() {
    let (model, x, labels) = digits();
    let inputs = Inputs::new(x.shallow_clone());
    let target = Target::PerSample(labels);
    let fgsm = Fgsm::params(0.3).bounds(0.0, 1.0).check().unwrap();
    let faint = Transform::GaussianNoise { std: 0.01, seed: 1 };
    let loud = Transform::GaussianNoise { std: 1.5, seed: 1 };
    let blur = Transform::Blur { sigma: 1.0 };
    let shift = Transform::Shift { max: 2, seed: 4 };
    let mut cmp = AttackComparator::accuracy();
    cmp.add("FGSM 0.3", &fgsm, 1).unwrap().add("faint noise", &faint, 4).unwrap().add("loud noise", &loud, 6).unwrap();
    cmp.add("blur", &blur, 1).unwrap().add("shift", &shift, 5).unwrap();
    assert!(cmp.add("blur", &blur, 1).is_err() && cmp.add("Original", &blur, 1).is_err());
    let res = cmp.evaluate(&model, &inputs, &target).unwrap();
    let mean = |t: &Tensor| t.mean(Kind::Double).double_value(&[]);
    assert_eq!(mean(&res.original), 1.0);
    let by = |name: &str| res.perturbations.iter().find(|s| s.name == name).unwrap();
    assert_eq!(mean(&by("faint noise").mean), 1.0);
    assert!(mean(&by("loud noise").mean) < 0.9);
    assert!(mean(&by("FGSM 0.3").mean) <= 0.2);
    for s in &res.perturbations {
        assert!(s.min.le_tensor(&s.mean).all().int64_value(&[]) == 1 && s.mean.le_tensor(&s.max).all().int64_value(&[]) == 1, "{}", s.name);
    }
    // Several draws differ: the worst case is below the best somewhere for loud noise.
    assert!(mean(&by("loud noise").min) < mean(&by("loud noise").max));
    let json = res.to_json();
    assert!(json["FGSM 0.3"].get("min").is_none() && json["loud noise"]["min"].is_array() && json["Original"].is_array());
    // Seeded: the same evaluation again gives the same numbers.
    let again = cmp.evaluate(&model, &inputs, &target).unwrap();
    assert_eq!(again.to_json(), json);
}

#[test]
fn transforms_closed_forms() {
    let model = FnModel::new(|x: &Tensor| x.flatten(1, -1).narrow(1, 0, 2));
    let x = Tensor::arange(2 * 9, (Kind::Float, Device::Cpu)).reshape([2, 1, 3, 3]);
    let inputs = Inputs::new(x.shallow_clone());
    // Shift by at most 0 pixels, blur of σ 0, noise of σ 0: the input itself.
    for t in [Transform::Shift { max: 0, seed: 0 }, Transform::Blur { sigma: 0.0 }, Transform::GaussianNoise { std: 0.0, seed: 0 }] {
        assert!(t.perturb(&model, &inputs, &Target::Argmax, None, 3).unwrap()[0].equal(&x), "{}", t.name());
    }
    // A one-pixel shift replicates the edge: every row of the image is one of the input's rows.
    let s = Transform::Shift { max: 1, seed: 9 }.perturb(&model, &inputs, &Target::Argmax, None, 0).unwrap();
    assert_eq!(s[0].size(), x.size());
    let noisy = Transform::GaussianNoise { std: 2.0, seed: 3 }.perturb(&model, &inputs, &Target::Argmax, Some(&[0.0, 2.0]), 0).unwrap();
    assert!(noisy[0].get(0).equal(&x.get(0)) && !noisy[0].get(1).equal(&x.get(1)));
    let _ = accuracy(&Tensor::eye(3, (Kind::Float, Device::Cpu)), &Tensor::from_slice(&[0i64, 1, 0])).unwrap();
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let (w, x) = w_and_x();
    let model = linear(&w);
    let inputs = Inputs::new(x.shallow_clone());
    let msg = |r: attrib_core::Result<attrib_robust::AttackOutcome>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(Fgsm::params(-0.1).check().unwrap_err().to_string().contains("epsilon"));
    assert!(Fgsm::params(f64::NAN).check().is_err());
    assert!(Fgsm::params(0.1).bounds(1.0, 0.0).check().unwrap_err().to_string().contains("lower <= upper"));
    assert!(Pgd::params(0.1).step_num(0).check().is_err());
    assert!(Pgd::params(0.1).step_size(-1.0).check().is_err());
    let f = Fgsm::params(0.1).check().unwrap();
    assert!(msg(f.perturb(&model, &inputs, &Target::Class(2))).contains("out of range"));
    assert!(msg(f.perturb(&model, &inputs, &Target::None)).contains("class target"));
    assert!(msg(f.perturb(&model, &inputs, &Target::PerSample(vec![0]))).contains("per-sample"));
    let t = Fgsm::params(0.1).targeted(true).check().unwrap();
    assert!(msg(t.perturb(&model, &inputs, &Target::Argmax)).contains("targeted"));
    let scalar = FnModel::new(|x: &Tensor| x.sum_dim_intlist([1i64].as_slice(), false, Kind::Double));
    assert!(msg(f.perturb(&scalar, &inputs, &Target::Class(0))).contains("[N, classes]"));
    let masked = Fgsm::params(0.1).mask(vec![Tensor::ones([4], (Kind::Double, Device::Cpu))]).check().unwrap();
    assert!(msg(masked.perturb(&model, &inputs, &Target::Argmax)).contains("mask"));
    assert!(MinParamPerturbation::new(&f, 0.0, 0.1, 0.2).is_err());
    assert!(MinParamPerturbation::new(&f, 0.0, 1.0, 0.0).is_err());
    assert!("l3".parse::<Norm>().is_err() && "softmax".parse::<Loss>().is_err());
    let _ = model.device();
}

/// A small convolutional classifier (4 classes) on 3-channel images that counts its calls.
fn counting_cnn(calls: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> FnModel<'static> {
    tch::manual_seed(5);
    let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
    FnModel::new(move |x: &Tensor| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1).relu().mean_dim([2i64, 3].as_slice(), false, Kind::Float)
    })
}

#[test]
fn a_bad_target_is_refused_before_the_layout_trial_and_any_step() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // Image-like CPU inputs and 10 steps: PGD times the two memory layouts (20 gradient passes)
    // before its first step, unless the target is refused first. A target that does not fit the
    // rows (no class, a targeted argmax, a wrong count, a negative index) needs no model call;
    // a class out of range is found at the first one, from its output's shape.
    let calls = Arc::new(AtomicUsize::new(0));
    let model = counting_cnn(calls.clone());
    let inputs = Inputs::new(Tensor::rand([3, 3, 8, 8], (Kind::Float, Device::Cpu)));
    let pgd = Pgd::params(0.05).step_num(10).check().unwrap();
    let pgd_random = Pgd::params(0.05).step_num(10).random_start(true).check().unwrap();
    let pgd_short = Pgd::params(0.05).step_num(1).check().unwrap();
    let pgd_short_random = Pgd::params(0.05).step_num(1).random_start(true).check().unwrap();
    let targeted = Pgd::params(0.05).step_num(10).targeted(true).check().unwrap();
    let fgsm = Fgsm::params(0.05).check().unwrap();
    let err = |r: attrib_core::Result<attrib_robust::AttackOutcome>| r.expect_err("a bad target is an error");
    // What, the attack, a part of its message, and the most model calls before the refusal.
    type Case<'a> = (&'a str, Box<dyn Fn() -> attrib_core::AttribError + 'a>, &'a str, usize);
    let cases: Vec<Case> = vec![
        ("pgd, class 4 of 4", Box::new(|| err(pgd.perturb(&model, &inputs, &Target::Class(4)))), "class index 4 is out of range for a model with 4 outputs", 1),
        ("pgd, a per-row class out of range", Box::new(|| err(pgd.perturb(&model, &inputs, &Target::PerSample(vec![0, 7, 1])))), "class index 7 is out of range", 1),
        ("pgd with a random start, class 4 of 4", Box::new(|| err(pgd_random.perturb(&model, &inputs, &Target::Class(4)))), "out of range", 1),
        ("pgd, two targets for three rows", Box::new(|| err(pgd.perturb(&model, &inputs, &Target::PerSample(vec![0, 1])))), "2 per-sample targets were given for a batch of 3 rows", 0),
        ("pgd, a negative class", Box::new(|| err(pgd.perturb(&model, &inputs, &Target::Class(-1)))), "negative", 0),
        ("pgd, no target", Box::new(|| err(pgd.perturb(&model, &inputs, &Target::None))), "class target", 0),
        ("targeted pgd, argmax", Box::new(|| err(targeted.perturb(&model, &inputs, &Target::Argmax))), "targeted", 0),
        ("fgsm, class 4 of 4", Box::new(|| err(fgsm.perturb(&model, &inputs, &Target::Class(4)))), "class index 4 is out of range", 1),
        ("fgsm, two targets for three rows", Box::new(|| err(fgsm.perturb(&model, &inputs, &Target::PerSample(vec![0, 1])))), "per-sample", 0),
        // Several rows out of range: every path names the first row's label.
        ("pgd, rows 0 and 1 out of range", Box::new(|| err(pgd.perturb(&model, &inputs, &Target::PerSample(vec![5, 9, 0])))), "class index 5 is out of range", 1),
        ("pgd with a random start, rows 0 and 1 out of range", Box::new(|| err(pgd_random.perturb(&model, &inputs, &Target::PerSample(vec![5, 9, 0])))), "class index 5 is out of range", 1),
        ("one-step pgd (no trial), rows 0 and 1 out of range", Box::new(|| err(pgd_short.perturb(&model, &inputs, &Target::PerSample(vec![5, 9, 0])))), "class index 5 is out of range", 1),
        ("one-step pgd with a random start, rows 0 and 1 out of range", Box::new(|| err(pgd_short_random.perturb(&model, &inputs, &Target::PerSample(vec![5, 9, 0])))), "class index 5 is out of range", 1),
        ("fgsm, rows 0 and 1 out of range", Box::new(|| err(fgsm.perturb(&model, &inputs, &Target::PerSample(vec![5, 9, 0])))), "class index 5 is out of range", 1),
    ];
    for (what, run, message, most_calls) in &cases {
        calls.store(0, Ordering::SeqCst);
        let e = run();
        assert!(e.to_string().contains(message), "{what}: {e}");
        let ran = calls.load(Ordering::SeqCst);
        assert!(ran <= *most_calls, "{what}: the model ran {ran} times before the target was refused");
    }
    // The same attack with a good target runs the trial and its steps: the counts above are
    // the refusals', not an attack that never reaches the model.
    calls.store(0, Ordering::SeqCst);
    pgd.perturb(&model, &inputs, &Target::Class(3)).unwrap();
    let ran = calls.load(Ordering::SeqCst);
    assert!(ran > 20, "a 10-step attack with its layout trial ran the model only {ran} times");
}
