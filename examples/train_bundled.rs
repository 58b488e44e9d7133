//! Train the bundled example models with tch (issue 5): a small CNN on scikit-learn's
//! handwritten digits (upsampled to 16×16) and a small MLP on scikit-learn's breast-cancer data.
//!
//! Run from the repository root, after `make demo` or `make test` created the venv:
//!
//! ```sh
//! .venv/bin/python examples/python/export_datasets.py       # only to rebuild examples/data/training/
//! cargo run --release -p attrib-examples --example train_bundled [-- digits|breast-cancer]
//! ```
//!
//! Reads the data splits and the untrained TorchScript architectures from
//! `examples/data/training/` (written by `export_datasets.py`), trains their parameters here with
//! AdamW (`tch::TrainableCModule` puts the scripted module's parameters in a `VarStore`; the
//! optimiser updates them in place, so saving the module saves the trained weights), prints
//! the test accuracy and writes, in `examples/data/`:
//! - `digits_cnn.pt`, `digits.npy` (the first test image of each digit, `[10, 1, 16, 16]`),
//!   `digits_labels.npy`;
//! - `breast_cancer_mlp.pt`, `breast_cancer.npy` (the first four malignant and four benign test
//!   rows, standardised, `[8, 30]`), `breast_cancer_labels.npy`.
//!
//! Deterministic: fixed seed, seeded shuffles (and ±1-pixel shifts of the digit batches), two
//! threads, CPU. The hyper-parameters were chosen on a validation split (the last fifth of the
//! training split), not on the test split. A few seconds on two quiet cores.

use std::path::Path;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor, TrainableCModule};

const DATA: &str = "examples/data";
const SEED: i64 = 0;

/// Side of the digit images the CNN sees.
const DIGIT_SIDE: i64 = 16;

/// scikit-learn's 8×8 digits (uint8 intensities 0..16, `[N, 8, 8]`) as `[N, 1, 16, 16]` float32
/// in [0, 1]: bilinear upsampling, libtorch's kernel (the same as PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False)`). The tests repeat this one line.
fn upsample_digits(raw: &Tensor) -> Tensor {
    (raw.to_kind(Kind::Float) / 16.0).unsqueeze(1).upsample_bilinear2d([DIGIT_SIDE, DIGIT_SIDE], false, None, None)
}

struct Setup {
    name: &'static str,
    init: &'static str,
    out: &'static str,
    epochs: usize,
    batch: i64,
    lr: f64,
    /// AdamW's decoupled weight decay.
    weight_decay: f64,
    /// Shift each image mini-batch by a random -1..=1 pixels in each direction (zero fill).
    shift: bool,
}

/// `x` [N, C, H, W] moved by (dy, dx) pixels, zeros shifted in.
fn shift_images(x: &Tensor, dy: i64, dx: i64) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    x.constant_pad_nd([1, 1, 1, 1]).narrow(2, 1 - dy, h).narrow(3, 1 - dx, w)
}

fn read(name: &str) -> tch::Result<Tensor> {
    Tensor::read_npy(Path::new(DATA).join("training").join(name))
}

fn accuracy(module: &TrainableCModule, x: &Tensor, y: &Tensor) -> tch::Result<(i64, i64)> {
    let logits = tch::no_grad(|| module.forward_ts(&[x]))?;
    let correct = logits.argmax(1, false).eq_tensor(y).sum(Kind::Int64).int64_value(&[]);
    Ok((correct, y.size()[0]))
}

/// Train `setup.init` on (x, y) with AdamW (cosine learning-rate decay) and cross-entropy, in
/// seeded shuffled mini-batches; save the trained module to `setup.out`.
fn train(setup: &Setup, x: &Tensor, y: &Tensor, x_test: &Tensor, y_test: &Tensor) -> tch::Result<()> {
    tch::manual_seed(SEED);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut module = TrainableCModule::load(Path::new(DATA).join("training").join(setup.init), vs.root())?;
    module.set_train();
    let mut opt = nn::AdamW { wd: setup.weight_decay, ..Default::default() }.build(&vs, setup.lr)?;
    let n = x.size()[0];
    let start = Instant::now();
    for epoch in 1..=setup.epochs {
        // Cosine learning-rate decay, so the last epochs settle instead of ending on a noisy step.
        let t = (epoch - 1) as f64 / setup.epochs as f64;
        opt.set_lr(setup.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
        let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
        let mut total = 0.0;
        for idx in perm.split(setup.batch, 0) {
            let mut xb = x.index_select(0, &idx);
            if setup.shift {
                let d = Vec::<i64>::try_from(Tensor::randint_low(-1, 2, [2], (Kind::Int64, Device::Cpu)))?;
                xb = shift_images(&xb, d[0], d[1]);
            }
            let logits = module.forward_ts(&[xb])?;
            let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
            opt.backward_step(&loss);
            total += loss.double_value(&[]) * idx.size()[0] as f64;
        }
        if epoch % 5 == 0 || epoch == setup.epochs {
            println!("{} epoch {epoch:3}: training loss {:.4}", setup.name, total / n as f64);
        }
    }
    module.set_eval();
    let (correct, count) = accuracy(&module, x_test, y_test)?;
    let (train_correct, train_count) = accuracy(&module, x, y)?;
    println!(
        "{}: trained in {:.1} s; test accuracy {correct}/{count} = {:.2} % (training split {:.2} %)",
        setup.name,
        start.elapsed().as_secs_f64(),
        100.0 * correct as f64 / count as f64,
        100.0 * train_correct as f64 / train_count as f64
    );
    module.save(Path::new(DATA).join(setup.out))
}

/// Indices of the first `k` test rows of each class in `0..classes`, class by class.
fn first_of_each(y: &Tensor, classes: i64, k: usize) -> Vec<i64> {
    let labels = Vec::<i64>::try_from(y).expect("int64 labels");
    (0..classes)
        .flat_map(|c| labels.iter().enumerate().filter(move |(_, &l)| l == c).take(k).map(|(i, _)| i as i64))
        .collect()
}

fn save_examples(x: &Tensor, y: &Tensor, picks: &[i64], stem: &str) -> tch::Result<()> {
    let idx = Tensor::from_slice(picks);
    x.index_select(0, &idx).contiguous().write_npy(Path::new(DATA).join(format!("{stem}.npy")))?;
    y.index_select(0, &idx).contiguous().write_npy(Path::new(DATA).join(format!("{stem}_labels.npy")))
}

fn digits() -> tch::Result<()> {
    let setup = Setup {
        name: "digits CNN",
        init: "digits_cnn_init.pt",
        out: "digits_cnn.pt",
        epochs: 40,
        batch: 32,
        lr: 3e-3,
        weight_decay: 0.01,
        shift: true,
    };
    let (x, y) = (upsample_digits(&read("digits_train_x.npy")?), read("digits_train_y.npy")?);
    let (xt, yt) = (upsample_digits(&read("digits_test_x.npy")?), read("digits_test_y.npy")?);
    train(&setup, &x, &y, &xt, &yt)?;
    save_examples(&xt, &yt, &first_of_each(&yt, 10, 1), "digits")
}

fn breast_cancer() -> tch::Result<()> {
    let setup = Setup {
        name: "breast-cancer MLP",
        init: "breast_cancer_mlp_init.pt",
        out: "breast_cancer_mlp.pt",
        epochs: 30,
        batch: 32,
        lr: 1e-3,
        weight_decay: 0.01,
        shift: false,
    };
    let (x, y) = (read("breast_cancer_train_x.npy")?, read("breast_cancer_train_y.npy")?);
    let (xt, yt) = (read("breast_cancer_test_x.npy")?, read("breast_cancer_test_y.npy")?);
    train(&setup, &x, &y, &xt, &yt)?;
    save_examples(&xt, &yt, &first_of_each(&yt, 2, 4), "breast_cancer")
}

fn main() -> tch::Result<()> {
    tch::set_num_threads(2);
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let start = Instant::now();
    match which.as_str() {
        "digits" => digits()?,
        "breast-cancer" => breast_cancer()?,
        "all" => {
            digits()?;
            breast_cancer()?
        }
        other => {
            eprintln!("error: unknown model {other:?}; use digits, breast-cancer or nothing for both");
            std::process::exit(2)
        }
    }
    println!("done in {:.1} s; wrote {DATA}/", start.elapsed().as_secs_f64());
    Ok(())
}
