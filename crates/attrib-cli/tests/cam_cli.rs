//! Guided Grad-CAM, Score-CAM and layer DeepLIFT from the command line: listed by `attrib
//! methods`, run by `attrib explain --layer NAME` on the bundled digit CNN (input-sized maps for
//! the two CAMs, a layer-shaped output and a convergence delta for layer DeepLIFT), and errors.

use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::repo_root;
use ndarray::ArrayD;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

#[test]
fn cam_methods_are_listed_and_run_with_layer() {
    let listed = attrib().run(&["methods"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    for name in ["guided-grad-cam", "score-cam", "layer-deeplift"] {
        assert!(text.contains(name), "attrib methods lacks {name}: {text}");
    }
    let root = repo_root();
    let (m, x) = (root.join("examples/data/digits_cnn.pt"), root.join("examples/data/digits.npy"));
    let (m, x) = (m.to_str().unwrap(), x.to_str().unwrap());
    let input: ArrayD<f32> = ndarray_npy::read_npy(x).unwrap();
    let n = input.shape()[0];
    for (method, extra) in [("guided-grad-cam", vec![]), ("score-cam", vec!["--param", "score=logit"]), ("layer-deeplift", vec!["--baseline", "0.1"])] {
        let out = tmp(&format!("cam_{method}.npy"));
        let mut args = vec!["explain", "--model", m, "--input", x, "--device", "cpu", "--method", method, "--layer", "conv2", "--json"];
        args.extend(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        let done = attrib().run(&args);
        assert!(done.status.success(), "{method}: {}", String::from_utf8_lossy(&done.stderr));
        let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        let a: ArrayD<f32> = ndarray_npy::read_npy(&out).unwrap();
        assert_eq!(a.shape()[0], n, "{method}");
        match method {
            "guided-grad-cam" => assert_eq!(a.shape(), input.shape()),
            "score-cam" => assert_eq!(a.shape()[1..], [1, input.shape()[2], input.shape()[3]]),
            _ => {
                assert_eq!(a.ndim(), 4, "layer-shaped output");
                assert_eq!(json["convergence_delta"].as_array().map(Vec::len), Some(n), "{json}");
            }
        }
    }
    let o = tmp("cam_bad.npy");
    attrib().assert_fails(
        &["explain", "--model", m, "--input", x, "--method", "score-cam", "--layer", "conv9", "--out", o.to_str().unwrap()],
        "no layer named 'conv9'",
    );
    attrib().assert_fails(
        &["explain", "--model", m, "--input", x, "--method", "guided-grad-cam", "--layer", "conv2", "--param", "interpolate_mode=area", "--out", o.to_str().unwrap()],
        "interpolate_mode",
    );
}
