//! The `attrib` binary end to end: outputs, JSON summary, and a clear error with a non-zero exit
//! (never a panic) for each kind of bad input.

use attrib::convert::{read_npy_f32, write_npy_f32};
use attrib::prelude::*;
use attrib_tests::{assert_close, fixtures, load_model, read, repo_root};
use attrib_tests::cli::{cli, tmp, Cli};
use ndarray::ArrayD;

/// The `attrib` binary cargo built for this test run.
fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn run(args: &[&str]) -> std::process::Output {
    attrib().run(args)
}

fn assert_fails(args: &[&str], needle: &str) {
    attrib().assert_fails(args, needle)
}

fn model_path(name: &str) -> String {
    fixtures().join("models").join(name).join("model.pt").display().to_string()
}

fn input_path(name: &str, i: usize) -> String {
    fixtures().join("models").join(name).join(format!("input{i}.npy")).display().to_string()
}

#[test]
fn saliency_writes_attributions_and_json() {
    let out_path = tmp("mlp_sal.npy");
    let out = run(&[
        "explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--method", "saliency",
        "--target", "1", "--out", out_path.to_str().unwrap(), "--device", "cpu", "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(v["method"], "saliency");
    assert_eq!(v["targets"], serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1]));
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert!(v["convergence_delta"].is_null(), "saliency has no convergence delta");
    // The file holds float32 attributions shaped like the input, equal to the library's.
    let written = read_npy_f32(&out_path).unwrap();
    assert_eq!(written.shape(), &[8, 10]);
    let fx = load_model("mlp");
    let lib = Saliency::default().attribute(&fx.model, &fx.inputs(), &Target::Class(1)).unwrap();
    assert_close(&read(&out_path), &lib.values[0], 0.0, "CLI vs library");
    // And Captum's (abs=False, class 0 is in the fixtures; class 1 checked through the library).
}

#[test]
fn abs_flag_and_per_row_target_file_match_captum() {
    let out_path = tmp("cnn_abs.npy");
    let targets = fixtures().join("models/cnn/targets.npy");
    let out = run(&[
        "explain", "--model", &model_path("cnn"), "--input", &input_path("cnn", 0), "--target",
        targets.to_str().unwrap(), "--abs", "--out", out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let expected = read(fixtures().join("saliency/cnn/per_row_abs1_0.npy"));
    assert_close(&read(&out_path), &expected, 1e-5, "CLI --abs per-row vs Captum");
}

#[test]
fn multi_input_model_takes_one_input_flag_per_tensor() {
    let out_path = tmp("two.npy");
    let out = run(&[
        "explain", "--model", &model_path("two_input"), "--input", &input_path("two_input", 0), "--input",
        &input_path("two_input", 1), "--target", "0", "--out", out_path.to_str().unwrap(), "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    for i in 0..2 {
        let p = tmp(&format!("two_{i}.npy"));
        let expected = read(fixtures().join(format!("saliency/two_input/class0_abs0_{i}.npy")));
        assert_close(&read(&p), &expected, 1e-5, &format!("input {i}"));
    }
}

#[test]
fn demo_model_runs() {
    let root = repo_root();
    let out_path = tmp("demo.npy");
    let out = run(&[
        "explain", "--model", root.join("examples/data/digits_cnn.pt").to_str().unwrap(), "--input",
        root.join("examples/data/digits.npy").to_str().unwrap(), "--out", out_path.to_str().unwrap(), "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The bundled CNN is trained: its argmax on one held-out example of each digit is mostly right.
    let predicted: Vec<i64> = v["targets"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
    let labels = attrib::convert::read_npy_i64(root.join("examples/data/digits_labels.npy")).unwrap();
    let correct = predicted.iter().zip(labels.iter()).filter(|(p, l)| p == l).count();
    assert!(correct >= 8, "bundled model got {correct}/10 digits right");
}

#[test]
fn missing_model_file() {
    assert_fails(&["explain", "--model", "/nonexistent/model.pt", "--input", &input_path("mlp", 0), "--out", "/tmp/x.npy"], "does not exist");
}

#[test]
fn corrupt_model_file() {
    let p = tmp("corrupt.pt");
    std::fs::write(&p, b"this is not a zip archive").unwrap();
    assert_fails(&["explain", "--model", p.to_str().unwrap(), "--input", &input_path("mlp", 0), "--out", "/tmp/x.npy"], "cannot load model");
}

#[test]
fn input_shape_the_model_rejects() {
    assert_fails(
        &["explain", "--model", &model_path("cnn"), "--input", &input_path("mlp", 0), "--target", "0", "--out", "/tmp/x.npy"],
        "the model failed on inputs of shape [8, 10]",
    );
}

#[test]
fn wrong_number_of_inputs() {
    assert_fails(&["explain", "--model", &model_path("two_input"), "--input", &input_path("two_input", 0), "--target", "0", "--out", "/tmp/x.npy"], "model failed");
}

#[test]
fn target_out_of_range() {
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--target", "3", "--out", "/tmp/x.npy"], "out of range");
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--target", "-1", "--out", "/tmp/x.npy"], "negative");
}

#[test]
fn per_row_target_file_of_wrong_length() {
    let p = tmp("bad_targets.npy");
    let a = ndarray::Array1::<i64>::from(vec![0, 1]).into_dyn();
    use ndarray_npy::WriteNpyExt;
    a.write_npy(std::fs::File::create(&p).unwrap()).unwrap();
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--target", p.to_str().unwrap(), "--out", "/tmp/x.npy"], "2 per-sample targets");
}

#[test]
fn nan_in_input() {
    let mut a = read_npy_f32(input_path("mlp", 0)).unwrap();
    a[[3, 4]] = f32::NAN;
    let p = tmp("nan.npy");
    write_npy_f32(&p, &a).unwrap();
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", p.to_str().unwrap(), "--out", "/tmp/x.npy"], "NaN");
}

#[test]
fn empty_batch() {
    let p = tmp("empty.npy");
    write_npy_f32(&p, &ArrayD::<f32>::zeros(ndarray::IxDyn(&[0, 10]))).unwrap();
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", p.to_str().unwrap(), "--out", "/tmp/x.npy"], "empty batch");
}

#[test]
fn missing_or_corrupt_input_file() {
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", "/nonexistent.npy", "--out", "/tmp/x.npy"], "cannot open");
    let p = tmp("garbage.npy");
    std::fs::write(&p, b"garbage").unwrap();
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", p.to_str().unwrap(), "--out", "/tmp/x.npy"], "cannot read .npy");
}

#[test]
fn unknown_device() {
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--device", "tpu", "--out", "/tmp/x.npy"], "unknown device");
}

#[test]
fn cuda_device_that_is_not_there() {
    if tch::Cuda::is_available() {
        assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--device", "cuda:99", "--out", "/tmp/x.npy"], "not available");
    } else {
        assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--device", "cuda", "--out", "/tmp/x.npy"], "not available");
    }
}

#[test]
fn unknown_method() {
    assert_fails(&["explain", "--model", &model_path("mlp"), "--input", &input_path("mlp", 0), "--method", "magic", "--out", "/tmp/x.npy"], "unknown method");
}

#[test]
fn class_target_on_scalar_output_model() {
    assert_fails(&["explain", "--model", &model_path("scalar_out"), "--input", &input_path("scalar_out", 0), "--target", "0", "--out", "/tmp/x.npy"], "one value per row");
}

#[test]
fn usage_errors_exit_with_2() {
    let out = run(&["explain", "--model", "m.pt"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn image_folder_input_with_heatmap() {
    let folder = fixtures().join("images/folder");
    let (out_path, png) = (tmp("imgs.npy"), tmp("imgs.png"));
    let out = run(&[
        "explain", "--model", repo_root().join("examples/data/digits_cnn.pt").to_str().unwrap(),
        "--input", folder.to_str().unwrap(), "--resize", "16", "--normalize", "0.5,0.25", "--out", out_path.to_str().unwrap(),
        "--heatmap", png.to_str().unwrap(), "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input_shapes"], serde_json::json!([[3, 1, 16, 16]]));
    assert_eq!(v["input_files"][0].as_array().unwrap().len(), 3);
    // Three 16x16 panels upscaled to 128 px with 4 px gaps.
    let img = attrib::viz::load_image(&png).unwrap();
    assert_eq!(img.shape()[1..], [128, 3 * 128 + 2 * 4]);
}

#[test]
fn bad_image_inputs() {
    let model = repo_root().join("examples/data/digits_cnn.pt");
    let m = model.to_str().unwrap();
    let empty = fixtures().join("images/empty_folder");
    assert_fails(&["explain", "--model", m, "--input", empty.to_str().unwrap(), "--out", "/tmp/x.npy"], "no png/jpg/jpeg");
    let bad = tmp("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    assert_fails(&["explain", "--model", m, "--input", bad.to_str().unwrap(), "--out", "/tmp/x.npy"], "cannot read image");
    let grey = fixtures().join("images/grey.png");
    assert_fails(&["explain", "--model", m, "--input", grey.to_str().unwrap(), "--resize", "0", "--out", "/tmp/x.npy"], "resize");
    assert_fails(
        &["explain", "--model", m, "--input", grey.to_str().unwrap(), "--normalize", "imagenet", "--out", "/tmp/x.npy"],
        "3 values per statistic for 1 channel",
    );
    assert_fails(
        &["explain", "--model", m, "--input", "/nonexistent.npy", "--heatmap", "h.png", "--viz", "masked_image", "--sign", "all", "--out", "h.npy"],
        "sign",
    );
    // 12x12 grey images into a model for 16x16 digits: the model's own error, with the shape.
    assert_fails(&["explain", "--model", m, "--input", grey.to_str().unwrap(), "--out", "/tmp/x.npy"], "[1, 1, 12, 12]");
    assert_fails(
        &["explain", "--model", m, "--input", "/nonexistent.npy", "--heatmap", "h.png", "--viz", "sparkles", "--out", "h.npy"],
        "sparkles",
    );
}

/// The README's one-command example: a torchvision ResNet-18 exported to TorchScript, a JPEG
/// resized and centre-cropped to 224×224 with ImageNet normalisation, and a heat map.
#[test]
fn resnet18_on_a_jpeg_in_one_command() {
    let d = fixtures().join("images");
    let (out_path, png) = (tmp("resnet.npy"), tmp("resnet.png"));
    let out = run(&[
        "explain", "--model", d.join("resnet18.pt").to_str().unwrap(), "--input", d.join("photo.jpg").to_str().unwrap(),
        "--resize", "256", "--center-crop", "224", "--normalize", "imagenet", "--method", "saliency", "--out",
        out_path.to_str().unwrap(), "--heatmap", png.to_str().unwrap(), "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input_shapes"], serde_json::json!([[1, 3, 224, 224]]));
    assert!(v["targets"][0].as_i64().unwrap() < 1000);
    assert_eq!(attrib::convert::read_npy_f32(&out_path).unwrap().shape(), &[1, 3, 224, 224]);
    assert_eq!(attrib::viz::load_image(&png).unwrap().shape()[1..], [224, 224]);
}
