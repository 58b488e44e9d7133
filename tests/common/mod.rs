//! Helpers shared by the workspace-level tests: fixture paths (built by
//! `tests/python/make_fixtures.py`, which `make test` runs first), loading fixture models and
//! arrays, and tolerance assertions.

use attrib::convert::{read_npy_i64, read_npy_tensor, read_npy_tensor_f64};
use attrib::prelude::*;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The fixture folder. Fails loudly (never skips) when it is missing.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var("ATTRIB_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures"));
    assert!(
        dir.join("models").is_dir(),
        "fixtures missing at {dir:?}: run `make test` (or `make fixtures`) so that Captum's reference outputs exist"
    );
    dir
}

/// A standard model saved by `tests/python/models.py`.
pub struct Fixture {
    /// Folder of the model.
    pub dir: PathBuf,
    /// The TorchScript model on the CPU.
    pub model: TorchScriptModel,
    /// Its inputs.
    pub inputs: Vec<Tensor>,
    /// Its additional forward arguments.
    pub extra: Vec<Tensor>,
    /// Per-row targets, when the model has classes.
    pub targets: Option<Vec<i64>>,
}

impl Fixture {
    /// The inputs as an [`Inputs`] (with the extra arguments).
    pub fn inputs(&self) -> Inputs {
        Inputs::multi(self.inputs.iter().map(|t| t.shallow_clone()).collect())
            .with_extra(self.extra.iter().map(|t| ForwardArg::Tensor(t.shallow_clone())).collect())
    }
}

/// Load `models/NAME` from the fixtures.
pub fn load_model(name: &str) -> Fixture {
    let dir = fixtures().join("models").join(name);
    let model = TorchScriptModel::load(dir.join("model.pt"), Device::Cpu).expect("fixture model loads");
    let inputs = numbered(&dir, "input");
    let extra = numbered(&dir, "extra");
    let targets = dir
        .join("targets.npy")
        .exists()
        .then(|| read_npy_i64(dir.join("targets.npy")).unwrap().iter().copied().collect());
    Fixture { dir, model, inputs, extra, targets }
}

/// Load `models/NAME` with the model, its inputs and tensor extra arguments converted to `kind`
/// (`Kind::Double` for float64 runs, as `model.double()` in PyTorch).
pub fn load_model_as(name: &str, kind: Kind) -> Fixture {
    let mut fx = load_model(name);
    fx.model.to_kind(kind).expect("fixture model converts");
    fx.inputs = fx.inputs.iter().map(|t| t.to_kind(kind)).collect();
    fx.extra = fx.extra.iter().map(|t| t.to_kind(kind)).collect();
    fx
}

fn numbered(dir: &Path, stem: &str) -> Vec<Tensor> {
    (0..)
        .map(|i| dir.join(format!("{stem}{i}.npy")))
        .take_while(|p| p.exists())
        .map(|p| read_npy_tensor(p, Device::Cpu).unwrap())
        .collect()
}

/// Read a float fixture array.
pub fn read(path: impl AsRef<Path>) -> Tensor {
    let path = path.as_ref();
    read_npy_tensor(path, Device::Cpu).unwrap_or_else(|e| panic!("reading {path:?}: {e}"))
}

/// Read a float fixture array as float64 (float64 files exactly; float32 files widened).
pub fn read_f64(path: impl AsRef<Path>) -> Tensor {
    let path = path.as_ref();
    read_npy_tensor_f64(path, Device::Cpu).unwrap_or_else(|e| panic!("reading {path:?}: {e}"))
}

/// Largest relative error `|a - b| / max(|b|, floor)` where `floor` is `1e-3 · max|b|`, so that
/// elements near zero are judged against the scale of the whole tensor.
pub fn max_rel_err(actual: &Tensor, expected: &Tensor) -> f64 {
    assert_eq!(actual.size(), expected.size(), "shapes differ");
    let a = actual.to_kind(Kind::Double);
    let b = expected.to_kind(Kind::Double);
    let scale = b.abs().max().double_value(&[]).max(1e-30);
    let denom = b.abs().clamp_min(1e-3 * scale);
    ((a - &b).abs() / denom).max().double_value(&[])
}

/// Assert `actual ≈ expected` to a relative tolerance (see [`max_rel_err`]).
pub fn assert_close(actual: &Tensor, expected: &Tensor, rtol: f64, what: &str) {
    let err = max_rel_err(actual, expected);
    assert!(err <= rtol, "{what}: max relative error {err:.3e} exceeds {rtol:.1e}");
}

/// The repository root (where `examples/` and `docs/` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Running the `attrib` binary from tests.
pub mod cli {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    /// The `attrib` binary under test, named by the caller: the CLI tests in
    /// `crates/attrib-cli/tests` pass `env!("CARGO_BIN_EXE_attrib")`, the binary cargo built for
    /// the same test run (never one found on disk, which may be stale).
    #[derive(Clone, Copy, Debug)]
    pub struct Cli<'a> {
        bin: &'a Path,
    }

    /// The binary at `bin` (it must exist).
    pub fn cli(bin: &str) -> Cli<'_> {
        let bin = Path::new(bin);
        assert!(bin.exists(), "attrib binary missing at {bin:?}");
        Cli { bin }
    }

    impl Cli<'_> {
        /// Run `attrib` with `args`.
        pub fn run(&self, args: &[&str]) -> Output {
            Command::new(self.bin).args(args).output().expect("attrib runs")
        }

        /// The command must fail with exit status 1 and one `error:` line mentioning `needle`
        /// (case-insensitive), with no panic reaching the user.
        pub fn assert_fails(&self, args: &[&str], needle: &str) {
            let out = self.run(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "expected exit 1 for {args:?}; stderr: {stderr}");
            assert!(stderr.starts_with("error: "), "stderr should start with `error: `: {stderr}");
            assert!(!stderr.contains("panicked") && !stderr.contains("internal failure"), "a panic reached the user: {stderr}");
            assert!(stderr.to_lowercase().contains(&needle.to_lowercase()), "stderr should mention `{needle}`: {stderr}");
        }
    }

    /// A path in [`scratch_dir`](super::scratch_dir), the scratch folder of this test process.
    pub fn tmp(name: &str) -> PathBuf {
        super::scratch_dir().join(name)
    }
}

/// The scratch folder of this test process, removed when it exits (see [`attrib_scratch`]).
pub use attrib_scratch::scratch_dir;
