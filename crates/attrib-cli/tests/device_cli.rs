//! `--device auto` says which device it chose (stderr and `--json`), and the `attrib` binary of
//! this test run has libtorch's CUDA backend in its process when the linked libtorch ships one.

use attrib_tests::cli::{cli, tmp};
use attrib_tests::repo_root;
use serde_json::Value;

#[test]
fn auto_reports_its_choice_and_loads_the_cuda_backend() {
    let d = repo_root().join("examples/data");
    let (m, x) = (d.join("digits_cnn.pt"), d.join("digits.npy"));
    let out = tmp("device.npy");
    let args = |device: &str| {
        vec!["explain".to_string(), "--model".into(), m.display().to_string(), "--input".into(), x.display().to_string(), "--out".into(), out.display().to_string(), "--json".into(), "--device".into(), device.into()]
    };
    let bin = cli(env!("CARGO_BIN_EXE_attrib"));
    let run = |device: &str| {
        let a = args(device);
        let o = bin.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (serde_json::from_slice::<Value>(&o.stdout).unwrap(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (auto, stderr) = run("auto");
    let device = auto["device"].as_str().unwrap();
    assert!(stderr.contains(&format!("device: {device} (auto:")), "{stderr}");
    assert!(auto["device_choice"].as_str().unwrap().starts_with("auto:"));
    // The venv's libtorch is what the binary runs on (rpath to .libtorch).
    let ships = repo_root().join(".libtorch/libtorch_cuda.so").exists();
    if ships {
        assert_eq!(auto["cuda_backend"]["loaded"], true, "{auto}");
    } else {
        println!("SKIPPED the load check: the linked libtorch ships no libtorch_cuda.so");
        assert_eq!(auto["cuda_backend"]["loaded"], false);
    }
    let (cpu, stderr) = run("cpu");
    assert_eq!(cpu["device"], "cpu");
    assert_eq!(cpu["cuda_backend"]["loaded"], false, "--device cpu leaves the CUDA backend out");
    assert!(!stderr.contains("device:"), "{stderr}");
}
