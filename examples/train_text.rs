//! Train the bundled sentiment model with tch (issue 15): a small embedding + convolution
//! classifier on human-rated movie-review sentences from the VADER data set, which ships inside
//! the `vaderSentiment` 3.3.2 source distribution on PyPI (see `examples/python/export_text.py`).
//!
//! Run from the repository root (`make bundled-models` does all three):
//!
//! ```sh
//! .venv/bin/python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d target/vader
//! .venv/bin/python examples/python/export_text.py target/vader/vaderSentiment-3.3.2.tar.gz
//! cargo run --release -p attrib-examples --example train_text [-- validate]
//! ```
//!
//! Reads the training split and the untrained TorchScript architecture from
//! `target/text-training/`, the held-out split from `examples/data/` (committed), trains with
//! AdamW (cosine learning-rate decay, dropout 0.5 in the model) and writes, in `examples/data/`:
//! - `sentiment_cnn.pt`: the trained model (token ids `[N, L]`, 0 = padding -> 2 logits,
//!   0 = negative, 1 = positive; its embedding layer is the submodule `embedding`);
//! - `sentiment.npy` (int64 `[8, L]`, the first four negative and four positive held-out
//!   sentences, 0-padded) and `sentiment_labels.npy`.
//!
//! `validate` trains on the first four fifths of the training split and reports the accuracy on
//! the last fifth instead (how the hyper-parameters below were chosen; the test split was not
//! used for that). Deterministic: fixed seed, seeded shuffles, two threads, CPU.

use std::path::Path;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor, TrainableCModule};

const DATA: &str = "examples/data";
const WORK: &str = "target/text-training";
const SEED: i64 = 0;
const EPOCHS: usize = 6;
const BATCH: i64 = 64;
const LR: f64 = 1e-2;
const WEIGHT_DECAY: f64 = 0.01;

/// `ids` [N, L] (each row padded with 0 at its end) cut to the longest row's length.
fn trim(ids: &Tensor) -> Tensor {
    let len = ids.ne(0).sum_dim_intlist(1, false, Kind::Int64).max().int64_value(&[]).max(1);
    ids.narrow(1, 0, len)
}

/// Labels of the held-out split: the first column of `sentiment_test.tsv`.
fn test_labels() -> tch::Result<Tensor> {
    let path = Path::new(DATA).join("sentiment_test.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| tch::TchError::FileFormat(format!("{}: {e}", path.display())))?;
    let labels: Vec<i64> = text.lines().skip(1).map(|l| l.split('\t').next().unwrap_or("").parse().unwrap_or(-1)).collect();
    Ok(Tensor::from_slice(&labels))
}

fn accuracy(module: &TrainableCModule, x: &Tensor, y: &Tensor) -> tch::Result<(i64, i64)> {
    let mut correct = 0;
    for (xb, yb) in x.split(512, 0).iter().zip(y.split(512, 0).iter()) {
        let logits = tch::no_grad(|| module.forward_ts(&[trim(xb)]))?;
        correct += logits.argmax(1, false).eq_tensor(yb).sum(Kind::Int64).int64_value(&[]);
    }
    Ok((correct, y.size()[0]))
}

fn train(x: &Tensor, y: &Tensor, x_eval: &Tensor, y_eval: &Tensor, eval_name: &str) -> tch::Result<TrainableCModule> {
    tch::manual_seed(SEED);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut module = TrainableCModule::load(Path::new(WORK).join("sentiment_cnn_init.pt"), vs.root())?;
    module.set_train();
    let mut opt = nn::AdamW { wd: WEIGHT_DECAY, ..Default::default() }.build(&vs, LR)?;
    let n = x.size()[0];
    let start = Instant::now();
    for epoch in 1..=EPOCHS {
        let t = (epoch - 1) as f64 / EPOCHS as f64;
        opt.set_lr(LR * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
        let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
        let mut total = 0.0;
        for idx in perm.split(BATCH, 0) {
            let logits = module.forward_ts(&[trim(&x.index_select(0, &idx))])?;
            let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
            opt.backward_step(&loss);
            total += loss.double_value(&[]) * idx.size()[0] as f64;
        }
        if epoch % 5 == 0 || epoch == EPOCHS {
            println!("sentiment CNN epoch {epoch:3}: training loss {:.4}", total / n as f64);
        }
    }
    module.set_eval();
    let (correct, count) = accuracy(&module, x_eval, y_eval)?;
    let (train_correct, train_count) = accuracy(&module, x, y)?;
    println!(
        "sentiment CNN: trained in {:.1} s; {eval_name} accuracy {correct}/{count} = {:.2} % (training split {:.2} %)",
        start.elapsed().as_secs_f64(),
        100.0 * correct as f64 / count as f64,
        100.0 * train_correct as f64 / train_count as f64
    );
    Ok(module)
}

/// Indices of the first `k` rows of each class in `0..classes`, class by class.
fn first_of_each(y: &Tensor, classes: i64, k: usize) -> Vec<i64> {
    let labels = Vec::<i64>::try_from(y).expect("int64 labels");
    (0..classes)
        .flat_map(|c| labels.iter().enumerate().filter(move |(_, &l)| l == c).take(k).map(|(i, _)| i as i64))
        .collect()
}

fn main() -> tch::Result<()> {
    tch::set_num_threads(2);
    let validate = std::env::args().nth(1).as_deref() == Some("validate");
    let x = Tensor::read_npy(Path::new(WORK).join("sentiment_train_ids.npy"))?;
    let y = Tensor::read_npy(Path::new(WORK).join("sentiment_train_y.npy"))?;
    if validate {
        let cut = x.size()[0] * 4 / 5;
        let rest = x.size()[0] - cut;
        train(&x.narrow(0, 0, cut), &y.narrow(0, 0, cut), &x.narrow(0, cut, rest), &y.narrow(0, cut, rest), "validation")?;
        return Ok(());
    }
    let xt = Tensor::read_npy(Path::new(DATA).join("training/sentiment_test_ids.npy"))?.to_kind(Kind::Int64);
    let yt = test_labels()?;
    let module = train(&x, &y, &xt, &yt, "held-out")?;
    module.save(Path::new(DATA).join("sentiment_cnn.pt"))?;
    let idx = Tensor::from_slice(&first_of_each(&yt, 2, 4));
    trim(&xt.index_select(0, &idx)).contiguous().write_npy(Path::new(DATA).join("sentiment.npy"))?;
    yt.index_select(0, &idx).contiguous().write_npy(Path::new(DATA).join("sentiment_labels.npy"))?;
    println!("wrote {DATA}/sentiment_cnn.pt, sentiment.npy, sentiment_labels.npy");
    Ok(())
}
