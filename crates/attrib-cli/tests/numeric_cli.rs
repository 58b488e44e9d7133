//! Numbers on the command line and in the results: NaN/inf attributions are an error (exit 1)
//! naming the rows and the cause unless `--allow-nonfinite`; values that do not fit the inputs'
//! dtype, overflowing budgets and zero or NaN counts are clear errors, never a panic.

use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::fixtures;
use ndarray::Array2;
use std::path::Path;
use tch::{Kind, Tensor};

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

/// A TorchScript model traced from `f` on `[N, 4]` float32 inputs, saved in the scratch folder.
fn traced(name: &str, f: fn(&Tensor) -> Tensor) -> String {
    let example = Tensor::ones([2, 4], (Kind::Float, tch::Device::Cpu));
    let mut closure = |xs: &[Tensor]| vec![f(&xs[0])];
    let m = tch::CModule::create_by_tracing("Model", "forward", &[example], &mut closure).expect("traces");
    let path = tmp(&format!("{name}.pt"));
    m.save(&path).expect("saves");
    path.display().to_string()
}

/// Five rows; rows 1, 2 and 4 hold a negative value.
fn inputs() -> String {
    let x = Array2::from_shape_vec((5, 4), vec![1., 2., 3., 4., -1., 2., 3., 4., 1., -2., 3., 4., 2., 2., 2., 2., 3., 1., -1., 1.]).unwrap();
    let path = tmp("numeric_x.npy");
    ndarray_npy::write_npy(&path, &x.mapv(|v: f64| v as f32)).unwrap();
    path.display().to_string()
}

/// sqrt of the inputs: a NaN output (and gradient) for rows with a negative value.
fn sqrt_model(x: &Tensor) -> Tensor {
    x.sqrt().matmul(&Tensor::ones([4, 3], (Kind::Float, tch::Device::Cpu)))
}

/// where(x > 0, sqrt(x), 0): a finite output, a NaN gradient for rows with a negative value.
fn masked_sqrt_model(x: &Tensor) -> Tensor {
    x.sqrt().where_self(&x.gt(0.0), &x.zeros_like()).matmul(&Tensor::ones([4, 3], (Kind::Float, tch::Device::Cpu)))
}

fn explain(model: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["explain", "--model", model, "--input", &inputs(), "--target", "0", "--device", "cpu", "--out", out.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn nan_outputs_and_gradients_are_errors_unless_allowed() {
    let sqrt = traced("sqrt", sqrt_model);
    let masked = traced("masked_sqrt", masked_sqrt_model);
    let out = tmp("numeric_nan.npy");
    for method in ["saliency", "integrated-gradients", "feature-ablation"] {
        let args = explain(&sqrt, &out, &["--method", method]);
        attrib().assert_fails(&strs(&args), "the model's output itself is NaN or inf for 3 of 5 rows (1, 2, 4)");
        attrib().assert_fails(&strs(&args), "--allow-nonfinite");
    }
    let args = explain(&masked, &out, &["--method", "saliency"]);
    attrib().assert_fails(&strs(&args), "the attributions are NaN or inf for 3 of 5 rows (1, 2, 4), while the model's output at the inputs is finite: the model's gradient");
    assert!(!out.exists(), "nothing is written when the attributions are refused");

    // --allow-nonfinite writes the raw values.
    for (model, method) in [(&sqrt, "integrated-gradients"), (&masked, "saliency")] {
        let args = explain(model, &out, &["--method", method, "--allow-nonfinite", "--json"]);
        let run = attrib().run(&strs(&args));
        assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
        let written: ndarray::ArrayD<f32> = ndarray_npy::read_npy(&out).unwrap();
        let nan_rows: Vec<usize> = (0..5).filter(|&r| written.index_axis(ndarray::Axis(0), r).iter().any(|v| v.is_nan())).collect();
        assert_eq!(nan_rows, vec![1, 2, 4], "{method}");
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(v["spec"]["allow_nonfinite"], true);
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn values_beyond_the_dtype_and_overflowing_sizes_are_clear_errors() {
    let model = fixtures().join("models/mlp/model.pt").display().to_string();
    let input = fixtures().join("models/mlp/input0.npy").display().to_string();
    let out = tmp("numeric_range.npy").display().to_string();
    let base = ["explain", "--model", &model, "--input", &input, "--out", &out, "--device", "cpu"];
    let fails = |extra: &[&str], needle: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        attrib().assert_fails(&args, needle);
    };
    fails(&["--method", "integrated-gradients", "--baseline=1e40"], "the scalar baseline of input 0 is 1e40, which does not fit the inputs' dtype float32 (values within ±3.4028235e38)");
    fails(&["--method", "feature-ablation", "--baseline", "-1e40"], "float32");
    fails(&["--method", "integrated-gradients", "--baseline", "uniform:0,1e40"], "float32");
    fails(&["--method", "saliency", "--memory-budget-mb", "99999999999999"], "99999999999999 MiB is not a usable budget");
    fails(&["--method", "saliency", "--noise-tunnel", "smoothgrad", "--stdevs", "1e38"], "would overflow its dtype float32");
    fails(&["--method", "gradient-shap", "--stdevs", "1e38"], "would overflow its dtype float32");
}

#[test]
fn zero_negative_and_nan_numbers_in_flags_are_clear_errors() {
    let model = fixtures().join("models/mlp/model.pt").display().to_string();
    let input = fixtures().join("models/mlp/input0.npy").display().to_string();
    let out = tmp("numeric_flags.npy").display().to_string();
    let base = ["explain", "--model", &model, "--input", &input, "--out", &out, "--device", "cpu"];
    let fails = |extra: &[&str], needle: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        attrib().assert_fails(&args, needle);
    };
    let ig = ["--method", "integrated-gradients"];
    fails(&[&ig[..], &["--steps", "0"]].concat(), "needs at least 1 step(s), got 0");
    fails(&["--method", "integrated-gradients", "--quadrature", "riemann_trapezoid", "--steps", "1"], "at least 2 step(s)");
    fails(&[&ig[..], &["--tolerance", "nan"]].concat(), "`tolerance`: integrated-gradients: expected a finite number, got \"NaN\" (flag --tolerance)");
    fails(&[&ig[..], &["--tolerance", "inf"]].concat(), "expected a finite number, got \"inf\"");
    fails(&[&ig[..], &["--tolerance", "-1"]].concat(), "must be a positive finite number, got -1");
    fails(&[&ig[..], &["--tolerance", "0.1", "--max-steps", "0"]].concat(), "max_steps");
    fails(&[&ig[..], &["--max-batch", "0"]].concat(), "`max_batch`: must be at least 1");
    fails(&[&ig[..], &["--memory-budget-mb", "0"]].concat(), "memory_budget_mb");
    fails(&[&ig[..], &["--noise-tunnel", "smoothgrad", "--nt-samples", "0"]].concat(), "`nt_samples`: must be at least 1");
    fails(&[&ig[..], &["--noise-tunnel", "smoothgrad", "--stdevs", "-1"]].concat(), "standard deviations must be finite and >= 0, got -1");
    fails(&[&ig[..], &["--noise-tunnel", "smoothgrad", "--stdevs", "nan"]].concat(), "expected a finite number, got \"NaN\" (flag --stdevs)");
    fails(&["--method", "gradient-shap", "--samples", "0"], "`n_samples`: must be at least 1");
    fails(&["--method", "gradient-shap", "--stdevs", "-0.5"], "got -0.5");
    fails(&["--method", "gradient-shap", "--stdevs", "NaN"], "expected a finite number");
    fails(&["--method", "smoothgrad", "--nt-samples", "0"], "nt_samples");
    fails(&["--method", "smoothgrad", "--param", "noise_level=-1"], "noise_level");
    fails(&["--method", "smoothgrad", "--param", "noise_level=nan"], "noise_level");
}
