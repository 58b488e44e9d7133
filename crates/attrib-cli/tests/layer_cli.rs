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
