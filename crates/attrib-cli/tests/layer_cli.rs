//! `--layer` and `--attribute-to-layer-input` map to the layer methods' spec keys: the same
//! output as `--param layer=...`, an unknown layer is an error listing the model's submodules,
//! and `--layer` on a method without a layer is an error.

use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::repo_root;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

#[test]
fn layer_flags_reach_the_layer_methods() {
    let root = repo_root();
    let (m, x) = (root.join("examples/data/digits_cnn.pt"), root.join("examples/data/digits.npy"));
    let (m, x) = (m.to_str().unwrap(), x.to_str().unwrap());
    let (a, b) = (tmp("layer_flag.npy"), tmp("layer_param.npy"));
    let base = ["explain", "--model", m, "--input", x, "--device", "cpu", "--method", "layer-grad-cam"];
    let run = |extra: &[&str], out: &std::path::Path| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let done = attrib().run(&args);
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        std::fs::read(out).unwrap()
    };
    assert_eq!(run(&["--layer", "conv2"], &a), run(&["--param", "layer=conv2"], &b));
    let o = a.to_str().unwrap();
    let mut args: Vec<&str> = base.to_vec();
    args.extend_from_slice(&["--layer", "conv9", "--out", o]);
    attrib().assert_fails(&args, "conv1, conv2");
    attrib().assert_fails(&["explain", "--model", m, "--input", x, "--method", "saliency", "--layer", "conv2", "--out", o], "--layer does not apply");
}

/// `--neuron` reaches the neuron methods like `--param neuron_selector=...`; the path methods run
/// from `attrib explain` and report their convergence delta; `attrib methods` lists them.
#[test]
fn neuron_flag_and_path_methods_run_from_the_command_line() {
    let root = repo_root();
    let (m, x) = (root.join("examples/data/digits_cnn.pt"), root.join("examples/data/digits.npy"));
    let (m, x) = (m.to_str().unwrap(), x.to_str().unwrap());
    let (a, b) = (tmp("neuron_flag.npy"), tmp("neuron_param.npy"));
    let run = |method: &str, extra: &[&str], out: &std::path::Path| {
        let mut args = vec!["explain", "--model", m, "--input", x, "--device", "cpu", "--method", method, "--layer", "conv2", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let done = attrib().run(&args);
        assert!(done.status.success(), "{method}: {}", String::from_utf8_lossy(&done.stderr));
        (std::fs::read(out).unwrap(), serde_json::from_slice::<serde_json::Value>(&done.stdout).unwrap())
    };
    for (method, steps) in [("neuron-gradient", &[][..]), ("neuron-integrated-gradients", &["--steps", "8"][..])] {
        let (flag, _) = run(method, &[&["--neuron", "1,0,-1"][..], steps].concat(), &a);
        let (param, _) = run(method, &[&["--param", "neuron_selector=1,0,-1"][..], steps].concat(), &b);
        assert_eq!(flag, param, "{method}");
    }
    let (_, json) = run("layer-integrated-gradients", &["--steps", "16"], &a);
    assert_eq!(json["convergence_delta"].as_array().map(Vec::len), Some(10), "{json}");
    let (_, json) = run("layer-conductance", &["--steps", "8"], &a);
    assert_eq!(json["convergence_delta"].as_array().map(Vec::len), Some(10), "{json}");
    let o = a.to_str().unwrap();
    attrib().assert_fails(&["explain", "--model", m, "--input", x, "--method", "neuron-gradient", "--layer", "conv2", "--out", o], "neuron_selector");
    attrib().assert_fails(&["explain", "--model", m, "--input", x, "--method", "saliency", "--neuron", "1", "--out", o], "--neuron does not apply");
    let listed = attrib().run(&["methods"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    for name in ["layer-integrated-gradients", "layer-conductance", "neuron-gradient", "neuron-integrated-gradients"] {
        assert!(text.contains(name), "`attrib methods` lacks {name}");
    }
}
