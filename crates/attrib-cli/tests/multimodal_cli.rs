//! The bundled image + word model (`examples/data/digit_word.pt`, trained by
//! `examples/train_multimodal.rs` on the documented construction of
//! `examples/python/export_multimodal.py`: a held-out digit image and a VADER-lexicon word,
//! label "agree" when a high digit comes with a positive word or a low one with a negative
//! word) and the per-modality split of its attributions (issue 15).

use attrib::prelude::*;
use attrib_cli::text::{per_modality, Vocab};
use attrib_tests::repo_root;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// Held-out accuracy in docs/text.md (printed by `train_multimodal`): 690 of 720 pairs.
const TEST_CORRECT: i64 = 690;

fn data(name: &str) -> PathBuf {
    repo_root().join("examples/data").join(name)
}

/// The held-out pairs: images `[N, 1, 16, 16]`, word ids `[N, 1]`, labels.
fn test_pairs() -> (Tensor, Tensor, Tensor) {
    let raw = Tensor::read_npy(data("training/digits_test_x.npy")).unwrap();
    let images = (raw.to_kind(Kind::Float) / 16.0).unsqueeze(1).upsample_bilinear2d([16, 16], false, None, None);
    let pairs = Tensor::read_npy(data("multimodal_test_pairs.npy")).unwrap();
    (images.index_select(0, &pairs.select(1, 0)), pairs.narrow(1, 1, 1).contiguous(), pairs.select(1, 2).contiguous())
}

fn correct(m: &TorchScriptModel, img: &Tensor, ids: &Tensor, y: &Tensor) -> i64 {
    let logits = tch::no_grad(|| m.forward(&[img.shallow_clone(), ids.shallow_clone()], &[])).unwrap();
    logits.argmax(1, false).eq_tensor(y).sum(Kind::Int64).int64_value(&[])
}

#[test]
fn the_model_needs_both_modalities_and_the_split_says_so() {
    let m = TorchScriptModel::load(data("digit_word.pt"), Device::Cpu).unwrap();
    let (img, ids, y) = test_pairs();
    let n = y.size()[0];
    assert_eq!(n, 720);
    let c = correct(&m, &img, &ids, &y);
    assert!(c >= TEST_CORRECT, "{c}/{n} held-out pairs right, docs say {TEST_CORRECT}");
    // Neither part alone tells the label: blanking either leaves the model near chance.
    for (what, c) in [("image zeroed", correct(&m, &img.zeros_like(), &ids, &y)), ("word padded", correct(&m, &img, &ids.zeros_like(), &y))] {
        let acc = c as f64 / n as f64;
        assert!((0.4..0.65).contains(&acc), "{what}: {acc}");
    }

    // The split on 64 held-out pairs, explaining the true label.
    let k = 64;
    let (img, ids, y) = (img.narrow(0, 0, k), ids.narrow(0, 0, k), y.narrow(0, 0, k));
    let target = Target::PerSample(Vec::<i64>::try_from(&y).unwrap());
    let split = per_modality(&m, &img, &ids, &target, 32, "embedding").unwrap();
    assert_eq!(split.image.size(), img.size());
    assert_eq!(split.tokens.size(), [k, 1]);
    // Each part is complete on its own path: f(x, w) - f(0, w) and f(x, w) - f(x, pad).
    let out = |a: &Tensor, b: &Tensor| {
        let l = tch::no_grad(|| m.forward(&[a.shallow_clone(), b.shallow_clone()], &[])).unwrap().to_kind(Kind::Double);
        l.gather(1, &y.unsqueeze(1), false).squeeze_dim(1)
    };
    let gap_img = out(&img, &ids) - out(&img.zeros_like(), &ids);
    let gap_txt = out(&img, &ids) - out(&img, &ids.zeros_like());
    let sum_img = split.image.reshape([k, -1]).sum_dim_intlist(1, false, Kind::Double);
    let sum_txt = split.tokens.sum_dim_intlist(1, false, Kind::Double);
    let (d_img, d_txt) = (&split.deltas.0, &split.deltas.1);
    let err_img = (&sum_img - &gap_img - d_img.to_kind(Kind::Double)).abs().max().double_value(&[]);
    let err_txt = (&sum_txt - &gap_txt - d_txt.to_kind(Kind::Double)).abs().max().double_value(&[]);
    assert!(err_img < 1e-3 && err_txt < 1e-3, "completeness: image {err_img}, tokens {err_txt}");
    // Both modalities carry a real share. Net contributions (|Σ a| per modality): the two are
    // needed alike by construction, and split about evenly (measured mean 0.504 for the image);
    // total |attribution| (Σ|a|, 256 pixels against one word, the share): the image's
    // is larger (measured mean 0.877, rows 0.736..0.965), the word's never negligible.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (abs_share, net_share) = (mean(&split.image_share), mean(&split.image_net_share));
    eprintln!("mean image share: {abs_share:.3} of total |attribution|, {net_share:.3} of net contributions");
    assert!((0.3..0.7).contains(&net_share), "mean image share of the net contributions {net_share}");
    assert!((0.5..0.97).contains(&abs_share), "mean image share of total |attribution| {abs_share}");
    assert!(split.image_share.iter().all(|&s| s < 0.99), "a row where the word gets < 1 % of |attribution|: {:?}", split.image_share);
    let right = Vec::<bool>::try_from(
        tch::no_grad(|| m.forward(&[img.shallow_clone(), ids.shallow_clone()], &[])).unwrap().argmax(1, false).eq_tensor(&y),
    )
    .unwrap();
    let words = Vec::<f64>::try_from(&sum_txt).unwrap();
    let positive = right.iter().zip(&words).filter(|(r, _)| **r).filter(|(_, w)| **w > 0.0).count();
    let rights = right.iter().filter(|r| **r).count();
    assert!(positive as f64 >= 0.9 * rights as f64, "{positive} of {rights} correct pairs with a positive word attribution");

    // The vocabulary names the words.
    let v = Vocab::load(data("multimodal_vocab.json")).unwrap();
    assert_eq!(v.token(v.id("wonderful")), "wonderful");
}

/// `attrib explain --per-modality` gives the library's split, writes both attributions and the
/// token view, and refuses inputs that are not an image then token ids.
#[test]
fn per_modality_from_the_command_line() {
    use attrib_tests::cli::{cli, tmp};
    let (m, img, ids, v) = (data("digit_word.pt"), data("digit_word_images.npy"), data("digit_word_ids.npy"), data("multimodal_vocab.json"));
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (out, html) = (tmp("mm.npy"), tmp("mm.html"));
    let attrib = cli(env!("CARGO_BIN_EXE_attrib"));
    let args = [
        "explain", "--model", &s(&m), "--input", &s(&img), "--input", &s(&ids), "--vocab", &s(&v), "--per-modality",
        "--steps", "16", "--target", "1", "--device", "cpu", "--json", "--out", &s(&out), "--heatmap", &s(&html),
    ];
    let done = attrib.run(&args);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    let model = TorchScriptModel::load(&m, Device::Cpu).unwrap();
    let (x, w) = (Tensor::read_npy(&img).unwrap(), Tensor::read_npy(&ids).unwrap());
    let split = per_modality(&model, &x, &w, &Target::Class(1), 16, "embedding").unwrap();
    for (i, share) in split.image_share.iter().enumerate() {
        let (a, b) = (json["image_share"][i].as_f64().unwrap(), json["token_share"][i].as_f64().unwrap());
        assert!((a - share).abs() < 1e-9 && (a + b - 1.0).abs() < 1e-12, "row {i}: {a} {b} vs {share}");
    }
    assert_eq!(Tensor::read_npy(tmp("mm_0.npy")).unwrap().size(), [8, 1, 16, 16]);
    assert_eq!(Tensor::read_npy(tmp("mm_1.npy")).unwrap().size(), [8, 1, 16]);
    let words = Vocab::load(&v).unwrap();
    let first = words.token(w.int64_value(&[0, 0]));
    assert_eq!(json["tokens"][0]["tokens"][0], first.as_str());
    assert!(std::fs::read_to_string(&html).unwrap().contains(&format!(">{first}</span>")));
    // The ids first, or one input only: errors that say what is wanted.
    attrib.assert_fails(
        &["explain", "--model", &s(&m), "--input", &s(&ids), "--input", &s(&img), "--per-modality", "--out", &s(&out)],
        "the float one (the image) first",
    );
    attrib.assert_fails(&["explain", "--model", &s(&m), "--input", &s(&img), "--per-modality", "--out", &s(&out)], "needs two inputs");
    // A flag that would change the attribution and that the split does not take is refused,
    // by name, not dropped.
    for (flag, value, named) in [
        ("--quadrature", "riemann_left", "`--quadrature`"),
        ("--nt-samples", "4", "`--nt-samples`"),
        ("--max-batch", "4", "`max_batch`"),
        ("--baseline", "0.5", "`--baseline`"),
        ("--param", "n_steps=8", "--param n_steps=8"),
    ] {
        attrib.assert_fails(
            &["explain", "--model", &s(&m), "--input", &s(&img), "--input", &s(&ids), "--per-modality", flag, value, "--out", &s(&out)],
            named,
        );
    }
}
