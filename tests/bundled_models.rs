//! The bundled example models of `examples/data/` (issue 5), trained with tch by
//! `examples/train_bundled.rs` on the splits that `examples/python/export_datasets.py` wrote to
//! `examples/data/training/` from scikit-learn's data sets.
//!
//! Needs no fixtures and no Python: everything read here is committed.

use attrib::prelude::*;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Test accuracies reported in the README (and printed by `train_bundled`); keep them in sync.
const DIGITS_TEST_CORRECT: i64 = 356; // of 360: 98.9 %
const DIGITS_TEST_SIZE: i64 = 360;
const BREAST_CANCER_TEST_CORRECT: i64 = 110; // of 114: 96.5 %
const BREAST_CANCER_TEST_SIZE: i64 = 114;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data").join(name)
}

fn read(name: &str) -> Tensor {
    Tensor::read_npy(data(name)).unwrap_or_else(|e| panic!("cannot read examples/data/{name}: {e}"))
}

fn load(name: &str) -> TorchScriptModel {
    TorchScriptModel::load(data(name), Device::Cpu).unwrap()
}

fn predict(model: &TorchScriptModel, x: &Tensor) -> Tensor {
    tch::no_grad(|| model.forward(&[x.shallow_clone()], &[])).unwrap().argmax(1, false)
}

fn correct(model: &TorchScriptModel, x: &Tensor, y: &Tensor) -> i64 {
    predict(model, x).eq_tensor(y).sum(Kind::Int64).int64_value(&[])
}

/// The same preprocessing as the trainer: scikit-learn's uint8 8×8 digits (0..16) to
/// `[N, 1, 16, 16]` float32 in [0, 1] by bilinear upsampling.
fn upsample_digits(raw: &Tensor) -> Tensor {
    (raw.to_kind(Kind::Float) / 16.0).unsqueeze(1).upsample_bilinear2d([16, 16], false, None, None)
}

/// Index of the row of `rows` equal to `row` (exactly), if any.
fn find_row(rows: &Tensor, row: &Tensor) -> Option<i64> {
    let n = rows.size()[0];
    (0..n).find(|&i| rows.get(i).equal(row))
}

/// Exactly one test row per explained example, and the saved labels are the test labels.
fn check_examples_are_test_rows(examples: &Tensor, labels: &Tensor, x_test: &Tensor, y_test: &Tensor) {
    assert_eq!(examples.size()[0], labels.size()[0]);
    for i in 0..examples.size()[0] {
        let j = find_row(x_test, &examples.get(i)).unwrap_or_else(|| panic!("example {i} is not a test row"));
        assert_eq!(y_test.int64_value(&[j]), labels.int64_value(&[i]), "label of example {i}");
    }
}

#[test]
fn digits_cnn_reaches_reported_test_accuracy() {
    let model = load("digits_cnn.pt");
    let (x, y) = (upsample_digits(&read("training/digits_test_x.npy")), read("training/digits_test_y.npy"));
    assert_eq!(x.size(), [DIGITS_TEST_SIZE, 1, 16, 16]);
    let c = correct(&model, &x, &y);
    assert!(c >= DIGITS_TEST_CORRECT, "digits CNN: {c}/{DIGITS_TEST_SIZE} test digits right, README says {DIGITS_TEST_CORRECT}");

    // The explained digits (`make demo`) are held-out test images, one per digit 0..9, all right.
    let (examples, labels) = (read("digits.npy"), read("digits_labels.npy"));
    assert_eq!(examples.size(), [10, 1, 16, 16]);
    assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), (0..10).collect::<Vec<_>>());
    check_examples_are_test_rows(&examples, &labels, &x, &y);
    assert_eq!(correct(&model, &examples, &labels), 10);
}

#[test]
fn breast_cancer_mlp_matches_sklearn_labels_at_reported_accuracy() {
    let model = load("breast_cancer_mlp.pt");
    // Labels as scikit-learn gives them (0 = malignant, 1 = benign), standardised features.
    let (x, y) = (read("training/breast_cancer_test_x.npy"), read("training/breast_cancer_test_y.npy"));
    assert_eq!(x.size(), [BREAST_CANCER_TEST_SIZE, 30]);
    let c = correct(&model, &x, &y);
    assert!(
        c >= BREAST_CANCER_TEST_CORRECT,
        "breast-cancer MLP: {c}/{BREAST_CANCER_TEST_SIZE} test rows right, README says {BREAST_CANCER_TEST_CORRECT}"
    );

    let (examples, labels) = (read("breast_cancer.npy"), read("breast_cancer_labels.npy"));
    assert_eq!(examples.size(), [8, 30]);
    assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [0, 0, 0, 0, 1, 1, 1, 1]);
    check_examples_are_test_rows(&examples, &labels, &x, &y);

    // One name per feature; the scaler's statistics describe the same 30 features.
    let names: Vec<String> = serde_json::from_str(&std::fs::read_to_string(data("breast_cancer_features.json")).unwrap()).unwrap();
    assert_eq!(names.len(), 30);
    assert_eq!(names[0], "mean radius");
    let scaler: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data("breast_cancer_scaler.json")).unwrap()).unwrap();
    assert_eq!(scaler["features"], serde_json::json!(names));
    assert_eq!(scaler["mean"].as_array().unwrap().len(), 30);
    assert!(scaler["std"].as_array().unwrap().iter().all(|s| s.as_f64().unwrap() > 0.0));
    // Standardised with the training split's statistics: the training split has mean 0, std 1.
    let train = read("training/breast_cancer_train_x.npy").to_kind(Kind::Double);
    assert!(train.mean_dim(0, false, Kind::Double).abs().max().double_value(&[]) < 1e-5);
    assert!((train.std_correction(0, 0, false) - 1.0).abs().max().double_value(&[]) < 1e-5);
}

/// Σ|attr| over stroke pixels (input > 0.2) and over the other (background) pixels, per digit.
fn stroke_and_background_mass(x: &Tensor, attr: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let stroke = x.gt(0.2);
    let a = attr.abs();
    let on = a.where_scalarother(&stroke, 0.0).sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Double);
    let off = a.where_scalarother(&stroke.logical_not(), 0.0).sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Double);
    (Vec::<f64>::try_from(&on).unwrap(), Vec::<f64>::try_from(&off).unwrap())
}

/// The check: Integrated Gradients on the trained CNN puts more attribution mass on the
/// digit's strokes than on the background.
///
/// With the default zero baseline this is close to trivially true: IG is (x - baseline) times an
/// averaged gradient, so it vanishes where the input is exactly 0, and most background pixels are
/// 0 or nearly so (upsampling leaves small non-zero values next to the strokes). So the same
/// check also runs with a *blurred* baseline (a 5×5 box blur of each digit; Sturmfels et al.,
/// "Visualizing the Impact of Feature Attribution Baselines", Distill 2020), where background
/// pixels next to strokes differ from their baseline and can take attribution: there the strokes
/// still win in aggregate and for at least 8 of the 10 digits (measured: 1.45× in aggregate,
/// 9 of 10 digits, the "2" being the exception at 0.88×).
///
/// Not asserted, and worth knowing: with a uniform 0.5 baseline the background takes *more* mass
/// than the strokes (measured 0.49× in aggregate), since every background pixel is then 0.5 away
/// from its baseline while stroke pixels (0.2..1) are on average closer to it. Which pixels "matter"
/// depends on the reference they are compared with.
#[test]
fn integrated_gradients_highlight_digit_strokes() {
    let model = load("digits_cnn.pt");
    let x = read("digits.npy");
    let n = x.size()[0] as usize;

    // Zero baseline: every digit, by a wide margin (measured 9× to 23×).
    let ig = IntegratedGradients::params().n_steps(50).check().unwrap();
    let attr = ig.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Argmax).unwrap();
    let (on, off) = stroke_and_background_mass(&x, attr.single().unwrap());
    for d in 0..n {
        assert!(on[d] > 3.0 * off[d], "digit {d}, zero baseline: stroke mass {} vs background {}", on[d], off[d]);
    }

    // Blurred baseline: in aggregate, and for at least 8 of the 10 digits.
    let blurred = x.avg_pool2d([5, 5], [1, 1], [2, 2], false, false, None::<i64>);
    let ig = IntegratedGradients::params().baselines(Baseline::Tensor(blurred)).n_steps(50).check().unwrap();
    let attr = ig.attribute(&model, &Inputs::new(x.shallow_clone()), &Target::Argmax).unwrap();
    let (on, off) = stroke_and_background_mass(&x, attr.single().unwrap());
    let (total_on, total_off) = (on.iter().sum::<f64>(), off.iter().sum::<f64>());
    assert!(total_on > 1.2 * total_off, "blurred baseline: stroke mass {total_on} vs background {total_off}");
    let wins = (0..n).filter(|&d| on[d] > off[d]).count();
    assert!(wins >= 8, "blurred baseline: strokes outweigh background for only {wins}/10 digits: {on:?} vs {off:?}");
}
