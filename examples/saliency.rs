//! Explain the bundled digit classifier's predictions with saliency, in a few lines of Rust.
//!
//! Run from the repository root (after `make demo` or `make test` created the venv):
//! `cargo run --release -p attrib-examples --example saliency`

use attrib::convert::{read_npy_tensor, write_npy_tensor};
use attrib::prelude::*;
use tch::Device;

fn main() -> attrib::Result<()> {
    let device = DeviceSpec::Auto.resolve()?;
    let model = TorchScriptModel::load("examples/data/digits_cnn.pt", device)?;
    let digits = read_npy_tensor("examples/data/digits.npy", Device::Cpu)?;

    let saliency = Saliency::params().abs(true).check()?;
    let attr = saliency.attribute(&model, &Inputs::new(digits), &Target::Argmax)?;

    write_npy_tensor("out/example_saliency.npy", attr.single()?)?;
    println!(
        "{} on {} digits, predicted classes {:?}, in {:.1} ms -> out/example_saliency.npy",
        attr.meta.method,
        attr.single()?.size()[0],
        attr.meta.targets.unwrap_or_default(),
        attr.meta.elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
