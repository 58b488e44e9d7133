//! Train the bundled image + word model with tch (issue 15): a digit image and one word in,
//! "agree" / "disagree" out, on the pairs of `examples/python/export_multimodal.py` (a documented
//! construction from scikit-learn's digits and the VADER lexicon's human-rated words: label 1
//! when a high digit (5..9) comes with a positive word or a low digit with a negative one).
//!
//! ```sh
//! .venv/bin/python examples/python/export_multimodal.py
//! cargo run --release -p attrib-examples --example train_multimodal
//! ```
//!
//! Writes `examples/data/digit_word.pt` (inputs: image `[N, 1, 16, 16]` in [0, 1], word ids
//! `[N, 1]`; submodules `embedding` for the words, `conv1`, `conv2`, `image_fc` for the image)
//! and `digit_word_images.npy` / `digit_word_ids.npy` / `digit_word_labels.npy`: the first eight
//! held-out pairs. Prints the held-out accuracy, and the accuracy with either part blanked (the
//! image zeroed, the word replaced by the pad id): near one half, since neither part alone
//! tells the label. Deterministic (seed 0, two threads, CPU).

use std::path::Path;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor, TrainableCModule};

const DATA: &str = "examples/data";
const WORK: &str = "target/multimodal-training";
const EPOCHS: usize = 30;
const BATCH: i64 = 64;
const LR: f64 = 3e-3;
const WEIGHT_DECAY: f64 = 0.01;

/// scikit-learn's 8×8 digits (uint8 0..16) as `[N, 1, 16, 16]` float32 in [0, 1], bilinear (as
/// for the digit CNN).
fn upsample_digits(raw: &Tensor) -> Tensor {
    (raw.to_kind(Kind::Float) / 16.0).unsqueeze(1).upsample_bilinear2d([16, 16], false, None, None)
}

/// The images, word ids `[N, 1]` and labels of pairs `[N, 3]` (image row, word id, label).
fn split(pairs: &Tensor, images: &Tensor) -> (Tensor, Tensor, Tensor) {
    (images.index_select(0, &pairs.select(1, 0)), pairs.narrow(1, 1, 1).contiguous(), pairs.select(1, 2).contiguous())
}

fn accuracy(m: &TrainableCModule, img: &Tensor, ids: &Tensor, y: &Tensor) -> tch::Result<f64> {
    let logits = tch::no_grad(|| m.forward_ts(&[img, ids]))?;
    Ok(logits.argmax(1, false).eq_tensor(y).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]))
}

fn main() -> tch::Result<()> {
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let train_images = upsample_digits(&Tensor::read_npy(Path::new(DATA).join("training/digits_train_x.npy"))?);
    let test_images = upsample_digits(&Tensor::read_npy(Path::new(DATA).join("training/digits_test_x.npy"))?);
    let (img, ids, y) = split(&Tensor::read_npy(Path::new(WORK).join("train_pairs.npy"))?, &train_images);
    let (img_t, ids_t, y_t) = split(&Tensor::read_npy(Path::new(DATA).join("multimodal_test_pairs.npy"))?, &test_images);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut m = TrainableCModule::load(Path::new(WORK).join("digit_word_init.pt"), vs.root())?;
    m.set_train();
    let mut opt = nn::AdamW { wd: WEIGHT_DECAY, ..Default::default() }.build(&vs, LR)?;
    let n = y.size()[0];
    let start = Instant::now();
    for epoch in 1..=EPOCHS {
        let t = (epoch - 1) as f64 / EPOCHS as f64;
        opt.set_lr(LR * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
        let mut total = 0.0;
        for idx in Tensor::randperm(n, (Kind::Int64, Device::Cpu)).split(BATCH, 0) {
            let logits = m.forward_ts(&[img.index_select(0, &idx), ids.index_select(0, &idx)])?;
            let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
            opt.backward_step(&loss);
            total += loss.double_value(&[]) * idx.size()[0] as f64;
        }
        if epoch % 10 == 0 {
            println!("digit-word epoch {epoch:3}: training loss {:.4}", total / n as f64);
        }
    }
    m.set_eval();
    println!(
        "digit-word model: trained in {:.1} s; held-out accuracy {:.2} % (training {:.2} %); image zeroed {:.2} %, word replaced by pad {:.2} %",
        start.elapsed().as_secs_f64(),
        100.0 * accuracy(&m, &img_t, &ids_t, &y_t)?,
        100.0 * accuracy(&m, &img, &ids, &y)?,
        100.0 * accuracy(&m, &img_t.zeros_like(), &ids_t, &y_t)?,
        100.0 * accuracy(&m, &img_t, &ids_t.zeros_like(), &y_t)?,
    );
    m.save(Path::new(DATA).join("digit_word.pt"))?;
    img_t.narrow(0, 0, 8).contiguous().write_npy(Path::new(DATA).join("digit_word_images.npy"))?;
    ids_t.narrow(0, 0, 8).contiguous().write_npy(Path::new(DATA).join("digit_word_ids.npy"))?;
    y_t.narrow(0, 0, 8).contiguous().write_npy(Path::new(DATA).join("digit_word_labels.npy"))?;
    println!("wrote {DATA}/digit_word.pt and the first eight held-out pairs");
    Ok(())
}
