//! `--precision`: bf16/fp16 autocast from the command line, reported in the spec; a precision
//! that does not exist is a clear error.

use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::repo_root;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

#[test]
fn precision_reaches_the_spec_and_bad_values_are_errors() {
    let root = repo_root();
    let (m, x) = (root.join("examples/data/digits_cnn.pt"), root.join("examples/data/digits.npy"));
    let out = tmp("precision_ig.npy");
    let args = |p: &'static str| -> Vec<String> {
        ["explain", "--model", m.to_str().unwrap(), "--input", x.to_str().unwrap(), "--method", "integrated-gradients", "--steps", "8",
         "--target", "0", "--device", "cpu", "--json", "--precision", p, "--out", out.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = attrib().run(&args("bf16").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(j["spec"]["precision"], "bf16", "{j}");
    assert!(j["convergence_delta"].as_array().is_some_and(|d| !d.is_empty()), "the delta is still reported: {j}");
    attrib().assert_fails(&args("int8").iter().map(String::as_str).collect::<Vec<_>>(), "precision");
}
