//! Reproducibility (issue 14): the same seeded command gives bit-identical output run to run
//! under the default `--memory-format auto`, because the evaluator's layout decision is made
//! once, kept in `$ATTRIB_CACHE_DIR`, and no result depends on the timing trial that made it
//! (see `attrib::tensor::decisions`).

use attrib_tests::cli::{cli, tmp, Cli};
use std::path::{Path, PathBuf};
use tch::{nn, nn::Module, Device, Kind, Tensor};

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

/// A small three-channel CNN traced to TorchScript (channels-last is a candidate layout for
/// it), and a seeded batch of 16 images 3×16×16.
fn model_and_input(dir: &Path) -> (String, String) {
    tch::manual_seed(7);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let conv1 = nn::conv2d(&root / "c1", 3, 16, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    let conv2 = nn::conv2d(&root / "c2", 16, 16, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    let fc = nn::linear(&root / "fc", 16 * 4 * 4, 10, Default::default());
    // Weights become constants of the traced graph.
    vs.freeze();
    let mut forward = |xs: &[Tensor]| {
        let h = conv1.forward(&xs[0]).relu().max_pool2d_default(2);
        let h = conv2.forward(&h).relu().max_pool2d_default(2);
        vec![fc.forward(&h.flatten(1, -1))]
    };
    let example = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let traced = tch::CModule::create_by_tracing("SmallCnn", "forward", &[example], &mut forward).expect("traces");
    let model = dir.join("cnn3.pt");
    traced.save(&model).expect("saves");
    let x = Tensor::randn([16, 3, 16, 16], (Kind::Float, Device::Cpu));
    let input = dir.join("x.npy");
    attrib::convert::write_npy_tensor(&input, &x).expect("writes the input");
    (model.display().to_string(), input.display().to_string())
}

/// A seeded noise tunnel (smoothgrad_sq) over integrated gradients: 16 × 16 steps × 4 copies =
/// 1024 gradient rows, enough for the evaluator to time both layouts.
fn run(model: &str, input: &str, out: &Path, cache: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "explain", "--model", model, "--input", input, "--target", "3", "--device", "cpu", "--method", "integrated-gradients",
        "--steps", "16", "--noise-tunnel", "smoothgrad_sq", "--nt-samples", "4", "--seed", "11", "--out",
    ];
    let out_s = out.display().to_string();
    args.push(&out_s);
    args.extend_from_slice(extra);
    let done = std::process::Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(&args)
        .env("ATTRIB_CACHE_DIR", cache)
        .output()
        .expect("attrib runs");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    std::fs::read(out).expect("output written")
}

fn decision_file(cache: &Path) -> PathBuf {
    cache.join(attrib::tensor::decisions::FILE_NAME)
}

#[test]
fn the_same_seeded_command_gives_one_output_in_ten_runs() {
    let _ = attrib();
    let dir = tmp("reproducible");
    std::fs::create_dir_all(&dir).unwrap();
    let (model, input) = model_and_input(&dir);
    let cache = dir.join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let outputs: Vec<Vec<u8>> = (0..10).map(|i| run(&model, &input, &dir.join(format!("run{i}.npy")), &cache, &[])).collect();
    let distinct: std::collections::BTreeSet<&Vec<u8>> = outputs.iter().collect();
    assert_eq!(distinct.len(), 1, "10 runs of one seeded command gave {} distinct outputs", distinct.len());

    // The first run decided by timing both layouts on real chunks; its output is still exactly
    // the output of the decided layout alone (the trial's chunks were recomputed in it).
    let kept = std::fs::read_to_string(decision_file(&cache)).expect("the first run kept its layout decision");
    let line = kept.lines().find(|l| l.contains("|gradients|") && l.contains("cnn3.pt")).expect("a decision for the model");
    // KEY<TAB>VARIANT<TAB>CHUNK SHAPES
    let layout = line.split('\t').nth(1).unwrap();
    assert!(layout == "contiguous" || layout == "channels-last", "{line}");
    let fixed = run(&model, &input, &dir.join("fixed.npy"), Path::new("off"), &["--memory-format", layout]);
    assert_eq!(outputs[0], fixed, "the auto run differs from --memory-format {layout}");
}

#[test]
fn a_kept_decision_is_what_later_runs_use() {
    let dir = tmp("reproducible_kept");
    std::fs::create_dir_all(&dir).unwrap();
    let (model, input) = model_and_input(&dir);
    let contiguous = run(&model, &input, &dir.join("c.npy"), Path::new("off"), &["--memory-format", "contiguous"]);
    let channels_last = run(&model, &input, &dir.join("cl.npy"), Path::new("off"), &["--memory-format", "channels-last"]);
    // The two layouts round differently here, so the output shows which one ran.
    assert_ne!(contiguous, channels_last, "both layouts gave the same bits: this test could not tell them apart");

    let cache = dir.join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    run(&model, &input, &dir.join("first.npy"), &cache, &[]);
    let kept = std::fs::read_to_string(decision_file(&cache)).expect("a decision was kept");
    for (layout, expected) in [("channels-last", &channels_last), ("contiguous", &contiguous)] {
        // Rewrite every kept decision to `layout`: later runs must follow it, whatever a trial
        // would have chosen.
        let forced: String = kept.lines().map(|l| format!("{}\t{layout}\n", l.split('\t').next().unwrap())).collect();
        std::fs::write(decision_file(&cache), forced).unwrap();
        let out = run(&model, &input, &dir.join(format!("forced_{layout}.npy")), &cache, &[]);
        assert_eq!(&out, expected, "a run with the decision `{layout}` kept did not run {layout}");
    }
}
