//! `attrib explain-dataset` (issue 13): per-item outputs of a folder of images of mixed sizes,
//! `.npy` rows equal bit for bit to `attrib explain` on the same batch, a killed run resumed to
//! the same bytes as an uninterrupted one, shards that together equal one run, list files, and
//! clear errors. Small data sets (tens of items) on the bundled digit CNN.

use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::repo_root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn digits_model() -> String {
    repo_root().join("examples/data/digits_cnn.pt").display().to_string()
}

/// `n` PNG images of seeded random sizes (10..=45 px a side) and colours, spread over two
/// sub-folders, in a fresh folder `name`.
fn images(name: &str, n: usize) -> PathBuf {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut state = 0x9e37_79b9_u32.wrapping_add(n as u32);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for i in 0..n {
        let sub = dir.join(if i % 2 == 0 { "even" } else { "odd/deeper" });
        std::fs::create_dir_all(&sub).unwrap();
        let (w, h) = (10 + next() % 36, 10 + next() % 36);
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(next() % 256) as u8, ((x * 7 + y * 3) % 256) as u8, (i * 20 % 256) as u8]));
        img.save(sub.join(format!("img{i:03}.png"))).unwrap();
    }
    dir
}

const DIGITS: &[&str] = &["--resize", "16", "--center-crop", "16", "--channels", "1", "--device", "cpu", "--quiet", "--no-warm-up"];

fn run_ok(args: &[&str]) -> Output {
    let out = attrib().run(args);
    assert!(out.status.success(), "attrib {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn dataset(input: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let model = digits_model();
    let mut args: Vec<String> = ["explain-dataset", "--model", &model, "--input"].iter().map(|s| s.to_string()).collect();
    args.push(input.display().to_string());
    args.push("--out-dir".into());
    args.push(out.display().to_string());
    args.extend(DIGITS.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_dataset(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = dataset(input, out, extra);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Every file under `dir` (relative path → bytes), except summaries (they hold timings).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if !rel.contains("summary") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn read_npy(path: &Path) -> tch::Tensor {
    attrib::convert::read_npy_tensor(path, tch::Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn folder_of_mixed_sizes_gives_one_attribution_per_item() {
    let data = images("ds-folder", 11);
    let out = tmp("ds-folder-out");
    let _ = std::fs::remove_dir_all(&out);
    run_dataset(&data, &out, &["--method", "integrated-gradients", "--steps", "8", "--batch-items", "4"]);
    let s = summary(&out.join("summary.json"));
    assert_eq!(s["items"], 11);
    assert_eq!(s["computed"], 11);
    assert_eq!(s["plan"]["blocks"], 3);
    let per_item = s["per_item"].as_array().unwrap();
    let ids: Vec<&str> = per_item.iter().map(|r| r["item"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "items in id order");
    assert!(ids.contains(&"odd/deeper/img001.png") && ids.contains(&"even/img000.png"), "{ids:?}");
    for r in per_item {
        let path = out.join(r["output"].as_str().unwrap());
        let a = read_npy(&path);
        assert_eq!(a.size(), vec![1, 1, 16, 16]);
        assert_eq!(r["target"], r["prediction"], "argmax target is the prediction");
        assert!(r["convergence_delta"].is_f64());
    }
    // The same item through `attrib explain` alone (a batch of one instead of a block of four):
    // the same preprocessing and method, equal up to float32 rounding of another batch.
    for id in ["even/img000.png", "odd/deeper/img005.png"] {
        let single = tmp(&format!("ds-single-{}.npy", id.replace('/', "_")));
        let model = digits_model();
        let input = data.join(id).display().to_string();
        let mut args = vec!["explain", "--model", &model, "--input", &input, "--method", "integrated-gradients", "--steps", "8"];
        let o = single.display().to_string();
        args.extend(["--out", &o]);
        args.extend(DIGITS.iter().filter(|a| **a != "--quiet"));
        run_ok(&args);
        let expected = read_npy(&single);
        let got = read_npy(&out.join(format!("attributions/{id}.npy")));
        let scale = expected.abs().max().double_value(&[]).max(1e-12);
        let err = (&got - &expected).abs().max().double_value(&[]) / scale;
        assert!(err <= 1e-5, "{id}: dataset run vs explain, max error {err:.2e} of the largest attribution");
    }
}

#[test]
fn npy_rows_equal_explain_on_the_same_batch_bit_for_bit() {
    let x = tch::Tensor::rand([13, 1, 16, 16], (tch::Kind::Float, tch::Device::Cpu));
    let input = tmp("ds-rows.npy");
    attrib::convert::write_npy_tensor(&input, &x).unwrap();
    let out = tmp("ds-rows-out");
    let _ = std::fs::remove_dir_all(&out);
    let flags = ["--method", "gradient-shap", "--samples", "3", "--stdevs", "0.1", "--seed", "4", "--max-batch", "16"];
    let mut extra = flags.to_vec();
    extra.extend(["--batch-items", "13"]);
    run_dataset(&input, &out, &extra);
    // One block of all 13 rows: the batch `attrib explain` runs, with the layout the plan pins.
    let whole = tmp("ds-rows-explain.npy");
    let (model, inp, o) = (digits_model(), input.display().to_string(), whole.display().to_string());
    let mut args = vec!["explain", "--model", &model, "--input", &inp, "--out", &o, "--device", "cpu", "--memory-format", "contiguous", "--no-freeze"];
    args.extend(flags);
    run_ok(&args);
    let expected = read_npy(&whole);
    for i in 0..13 {
        let got = read_npy(&out.join(format!("attributions/{i:06}.npy")));
        assert!(got.equal(&expected.narrow(0, i, 1)), "row {i} differs from attrib explain");
    }
}

#[test]
fn killed_run_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let data = images("ds-kill", 14);
    let (whole, killed) = (tmp("ds-kill-whole"), tmp("ds-kill-resumed"));
    for d in [&whole, &killed] {
        let _ = std::fs::remove_dir_all(d);
    }
    // A seeded method: its noise is drawn per block, so blocks must not change on resumption.
    let flags = ["--method", "smoothgrad", "--seed", "9", "--nt-samples", "4", "--batch-items", "4"];
    run_dataset(&data, &whole, &flags);
    let args = dataset(&data, &killed, &flags);
    let died = std::process::Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(&args)
        .env(attrib_dataset::run::TEST_KILL_ENV, "2")
        .output()
        .unwrap();
    assert_eq!(died.status.code(), Some(137), "the run should stop in block 3: {}", String::from_utf8_lossy(&died.stderr));
    assert!(killed.join("blocks/000001.json").is_file() && !killed.join("blocks/000002.json").exists());
    let partial = files(&killed.join("attributions")).len();
    assert_eq!(partial, 9, "two blocks of four and the first item of the third");
    assert!(!killed.join("summary.json").exists());
    run_dataset(&data, &killed, &flags);
    let s = summary(&killed.join("summary.json"));
    assert_eq!((s["computed"].as_u64(), s["skipped"].as_u64()), (Some(6), Some(8)), "the two finished blocks are skipped");
    assert_eq!(files(&killed), files(&whole), "resumed outputs equal the uninterrupted run's bytes");
    // A third run has nothing left to do.
    run_dataset(&data, &killed, &flags);
    let again = summary(&killed.join("summary.json"));
    assert_eq!((again["computed"].as_u64(), again["skipped"].as_u64()), (Some(0), Some(14)));
    assert_eq!(again["per_item"], s["per_item"]);
    // Reported with nothing left to do (smoothgrad's σ comes from the input range of the batch
    // it was built for, so only its kind is compared).
    assert_eq!(again["params"]["nt_type"], s["params"]["nt_type"]);
    assert_eq!(again["params"]["seed"], 9);
}

#[test]
fn shards_together_equal_one_run() {
    let data = images("ds-shards", 10);
    let (whole, sharded) = (tmp("ds-shards-whole"), tmp("ds-shards-parts"));
    for d in [&whole, &sharded] {
        let _ = std::fs::remove_dir_all(d);
    }
    let flags = ["--method", "integrated-gradients", "--steps", "6", "--batch-items", "3"];
    run_dataset(&data, &whole, &flags);
    let mut plan_only = flags.to_vec();
    plan_only.push("--plan-only");
    run_dataset(&data, &sharded, &plan_only);
    assert!(sharded.join("plan.json").is_file() && !sharded.join("attributions").exists());
    let mut items = 0;
    for k in ["3/3", "1/3", "2/3"] {
        let mut f = flags.to_vec();
        f.extend(["--shard", k]);
        run_dataset(&data, &sharded, &f);
        let tag = k.replace('/', "-of-");
        items += summary(&sharded.join(format!("shards/summary-{tag}.json")))["items"].as_u64().unwrap();
    }
    assert_eq!(items, 10);
    assert_eq!(files(&sharded), files(&whole), "three shards write what one run writes");
}

#[test]
fn list_file_names_items_relative_to_their_common_folder() {
    let data = images("ds-list", 4);
    let list = data.join("odd").join("list.txt");
    std::fs::write(&list, "# two images\n../even/img000.png\n\ndeeper/img001.png\n").unwrap();
    let out = tmp("ds-list-out");
    let _ = std::fs::remove_dir_all(&out);
    run_dataset(&list, &out, &["--method", "saliency"]);
    let s = summary(&out.join("summary.json"));
    let ids: Vec<&str> = s["per_item"].as_array().unwrap().iter().map(|r| r["item"].as_str().unwrap()).collect();
    assert_eq!(ids, ["even/img000.png", "odd/deeper/img001.png"]);
    assert!(out.join("attributions/odd/deeper/img001.png.npy").is_file());
}

#[test]
fn errors_say_what_to_fix() {
    let data = images("ds-errors", 3);
    let out = tmp("ds-errors-out");
    let _ = std::fs::remove_dir_all(&out);
    run_dataset(&data, &out, &["--method", "saliency", "--batch-items", "2"]);
    let fails = |extra: &[&str], needle: &str| {
        let args = dataset(&data, &out, extra);
        attrib().assert_fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    fails(&["--method", "saliency", "--batch-items", "3"], "pins --batch-items 2");
    fails(&["--method", "integrated-gradients"], "differs in method");
    fails(&["--method", "saliency", "--shard", "0/2"], "K/N");
    let targets = tmp("ds-targets.npy");
    ndarray_npy::write_npy(&targets, &ndarray::arr1(&[1i64, 2, 3])).unwrap();
    fails(&["--method", "saliency", "--target", &targets.display().to_string()], "one target file per row");
    std::fs::write(data.join("even/broken.png"), b"not a png").unwrap();
    let fresh = tmp("ds-errors-fresh");
    let _ = std::fs::remove_dir_all(&fresh);
    let args = dataset(&data, &fresh, &["--method", "saliency"]);
    attrib().assert_fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), "broken.png");
}

/// A skipped test says so on the terminal: written to the process's stderr directly, which the
/// test harness does not capture (a passing test's `eprintln!` would stay hidden).
fn say_skipped(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\nSKIPPED {test}: {why}");
}

#[test]
fn ray_driver_on_two_local_workers_equals_one_process() {
    let python = std::env::var("ATTRIB_PYTHON").unwrap_or_else(|_| repo_root().join(".venv/bin/python").display().to_string());
    let has_ray = std::process::Command::new(&python).args(["-c", "import ray"]).output();
    match has_ray {
        Ok(o) if o.status.success() => {}
        Ok(o) => return say_skipped("ray_driver", &format!("{python} cannot import ray ({}); `make venv` installs it", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""))),
        Err(e) => return say_skipped("ray_driver", &format!("cannot run {python}: {e}")),
    }
    let data = images("ds-ray", 10);
    let (one, ray) = (tmp("ds-ray-one"), tmp("ds-ray-tasks"));
    for d in [&one, &ray] {
        let _ = std::fs::remove_dir_all(d);
    }
    // One attrib process with one thread (a Ray task with one core runs one thread too).
    let flags = ["--method", "smoothgrad", "--seed", "2", "--nt-samples", "3", "--batch-items", "3", "--metrics", "4,infidelity"];
    let mut single = flags.to_vec();
    single.extend(["--threads", "1"]);
    run_dataset(&data, &one, &single);
    let mut args: Vec<String> = [repo_root().join("examples/ray_driver.py").display().to_string()].to_vec();
    args.extend(["--shards", "2", "--cpus-per-task", "1", "--num-cpus", "2", "--attrib", env!("CARGO_BIN_EXE_attrib"), "--out-dir"].map(String::from));
    args.push(ray.display().to_string());
    args.push("--".into());
    let model = digits_model();
    args.extend(["--model", &model, "--input"].map(String::from));
    args.push(data.display().to_string());
    args.extend(DIGITS.iter().filter(|a| **a != "--quiet").map(|s| s.to_string()));
    args.extend(flags.iter().map(|s| s.to_string()));
    // Ray's session folder goes into the test's scratch folder (removed at exit), not /tmp/ray.
    let done = std::process::Command::new(&python).args(&args).env_remove("RAY_ADDRESS").env("RAY_TMPDIR", attrib_tests::scratch_dir()).output().expect("python runs");
    let stderr = String::from_utf8_lossy(&done.stderr);
    if done.status.code() == Some(75) {
        return say_skipped("ray_driver", &format!("Ray cannot start on this machine: {}", stderr.trim()));
    }
    assert!(done.status.success(), "ray driver failed: {stderr}");
    assert_eq!(files(&ray), files(&one), "two Ray tasks write what one process writes");
    let merged = summary(&ray.join("summary.json"));
    assert_eq!(merged["items"], 10);
    assert_eq!(merged["ray"]["tasks"], 2);
    let alone = summary(&one.join("summary.json"));
    assert_eq!(merged["per_item"], alone["per_item"]);
    // The driver aggregates the metrics again over all items, as attrib does.
    assert_eq!(merged["metrics"].as_object().unwrap().keys().collect::<Vec<_>>(), alone["metrics"].as_object().unwrap().keys().collect::<Vec<_>>());
    for (key, field) in [("deletion_auc", "mean"), ("insertion_auc", "mean"), ("deletion_auc", "sd"), ("infidelity", "mean"), ("infidelity", "sd")] {
        let (a, b) = (merged["metrics"][key][field].as_f64().unwrap(), alone["metrics"][key][field].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{key} {field}: {a} vs {b}");
    }
    assert!(ray.join("shards/summary-1-of-2.json").is_file() && ray.join("shards/summary-2-of-2.json").is_file());
}

/// The tensors of a safetensors file: name → (shape, little-endian data bytes).
fn safetensors(path: &Path) -> BTreeMap<String, (Vec<i64>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut covered = 0;
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().unwrap() {
        assert_eq!(t["dtype"], "F32");
        let shape: Vec<i64> = t["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
        let (a, b) = (t["data_offsets"][0].as_u64().unwrap() as usize, t["data_offsets"][1].as_u64().unwrap() as usize);
        assert_eq!(b - a, shape.iter().product::<i64>() as usize * 4);
        covered += b - a;
        out.insert(name.clone(), (shape, data[a..b].to_vec()));
    }
    assert_eq!(covered, data.len(), "the tensors cover the data exactly");
    out
}

#[test]
fn safetensors_blocks_hold_the_npy_bytes_and_resume_alike() {
    let data = images("ds-st", 7);
    let (npy, st, killed) = (tmp("ds-st-npy"), tmp("ds-st-whole"), tmp("ds-st-killed"));
    for d in [&npy, &st, &killed] {
        let _ = std::fs::remove_dir_all(d);
    }
    let flags = ["--method", "integrated-gradients", "--steps", "5", "--batch-items", "3"];
    run_dataset(&data, &npy, &flags);
    let mut st_flags = flags.to_vec();
    st_flags.extend(["--format", "safetensors"]);
    run_dataset(&data, &st, &st_flags);
    let s = summary(&st.join("summary.json"));
    let mut seen = 0;
    for r in s["per_item"].as_array().unwrap() {
        let (file, tensor) = (r["output"].as_str().unwrap(), r["tensor"].as_str().unwrap());
        let tensors = safetensors(&st.join(file));
        let (shape, bytes) = &tensors[tensor];
        assert_eq!(shape, &vec![1, 1, 16, 16]);
        let npy_bytes = std::fs::read(npy.join(format!("attributions/{tensor}.npy"))).unwrap();
        assert!(npy_bytes.ends_with(bytes), "{tensor}: the safetensors data equal the .npy data");
        seen += 1;
    }
    assert_eq!(seen, 7);
    assert!(!st.join("attributions").exists());
    let args = dataset(&data, &killed, &st_flags);
    let died = std::process::Command::new(env!("CARGO_BIN_EXE_attrib")).args(&args).env(attrib_dataset::run::TEST_KILL_ENV, "1").output().unwrap();
    assert_eq!(died.status.code(), Some(137));
    assert!(killed.join("blocks/000001.safetensors").is_file() && !killed.join("blocks/000001.json").exists());
    run_dataset(&data, &killed, &st_flags);
    assert_eq!(summary(&killed.join("summary.json"))["skipped"], 3);
    assert_eq!(files(&killed), files(&st), "resumed safetensors run equals the uninterrupted one");
}

#[test]
fn metrics_are_recorded_per_item_and_aggregated_with_an_interval() {
    let data = images("ds-metrics", 6);
    let out = tmp("ds-metrics-out");
    let _ = std::fs::remove_dir_all(&out);
    run_dataset(&data, &out, &["--method", "saliency", "--abs", "--batch-items", "4", "--metrics", "8"]);
    let s = summary(&out.join("summary.json"));
    let del: Vec<f64> = s["per_item"].as_array().unwrap().iter().map(|r| r["deletion_auc"].as_f64().unwrap()).collect();
    assert_eq!(del.len(), 6);
    assert!(del.iter().all(|v| (0.0..=1.0).contains(v)), "areas under probability curves lie in [0, 1]: {del:?}");
    let m = &s["metrics"]["deletion_auc"];
    let mean = del.iter().sum::<f64>() / 6.0;
    assert!((m["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    let (lo, hi) = (m["ci95"][0].as_f64().unwrap(), m["ci95"][1].as_f64().unwrap());
    assert!(lo <= mean && mean <= hi);
    assert_eq!(s["metrics"]["insertion_auc"]["n"], 6);
}

#[test]
fn compare_dataset_runs_each_method_as_a_dataset_run() {
    let data = images("ds-compare", 6);
    let (out, alone) = (tmp("ds-compare-out"), tmp("ds-compare-alone"));
    for d in [&out, &alone] {
        let _ = std::fs::remove_dir_all(d);
    }
    let (model, input, o) = (digits_model(), data.display().to_string(), out.display().to_string());
    let mut args = vec!["compare-dataset", "--model", &model, "--input", &input, "--out-dir", &o, "--metrics", "5", "--batch-items", "4"];
    args.extend(["--spec", r#"{"method": "integrated-gradients", "label": "ig-4", "n_steps": 4}"#, "--methods", "saliency"]);
    args.extend(DIGITS);
    run_ok(&args);
    let c = summary(&out.join("comparison.json"));
    let rows = c["methods"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["ig-4", "saliency"]);
    for r in rows {
        assert_eq!(r["items"], 6);
        assert_eq!(r["deletion_auc"]["n"], 6);
        assert!(r["insertion_auc"]["ci95"].is_array());
    }
    assert!(rows[0]["abs_convergence_delta"]["mean"].is_f64() && rows[1]["abs_convergence_delta"].is_null());
    // Each method's folder is an ordinary data-set run: the same bytes as explain-dataset alone.
    run_dataset(&data, &alone, &["--method", "integrated-gradients", "--steps", "4", "--metrics", "5", "--batch-items", "4"]);
    assert_eq!(files(&out.join("ig-4")), files(&alone));
    // A rerun resumes: nothing left to compute, the same aggregates.
    run_ok(&args);
    let again = summary(&out.join("comparison.json"));
    assert_eq!(again["methods"][0]["computed"], 0);
    assert_eq!(again["methods"][0]["deletion_auc"], rows[0]["deletion_auc"]);
}

/// The first `n` digits of `examples/data/digits.npy` (`[n, 1, 16, 16]`) in `name`.
fn digit_rows(name: &str, n: i64) -> PathBuf {
    let x = read_npy(&repo_root().join("examples/data/digits.npy")).narrow(0, 0, n);
    let path = tmp(name);
    attrib::convert::write_npy_tensor(&path, &x).unwrap();
    path
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

/// Mean, sample sd and the 95 % normal interval, computed here from the values.
fn by_hand(v: &[f64]) -> (f64, f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    let half = 1.96 * var.sqrt() / n.sqrt();
    (mean, var.sqrt(), mean - half, mean + half)
}

#[test]
fn robustness_metrics_per_item_equal_attrib_metrics_and_aggregate_by_hand() {
    let data = digit_rows("ds-robust.npy", 7);
    // Integrated gradients: infidelity's `I = (x − x̃)/x` branch (a method that multiplies by
    // inputs); saliency's aggregates are checked in the compare-dataset test below.
    for (method, extra) in [("integrated-gradients", vec!["--steps", "4"])] {
        let out = tmp(&format!("ds-robust-{method}"));
        let _ = std::fs::remove_dir_all(&out);
        let mut flags = vec!["--method", method, "--batch-items", "3", "--metrics", "infidelity,sensitivity-max,faithfulness", "--metrics-seed", "5"];
        flags.extend(&extra);
        run_dataset(&data, &out, &flags);
        let s = summary(&out.join("summary.json"));
        let items = s["per_item"].as_array().unwrap();
        assert_eq!(items.len(), 7);
        assert!(items.iter().all(|r| r.get("deletion_auc").is_none()), "no curves unless asked");
        // Item 4 (second of block 1), alone through `attrib metrics` with the item's seed.
        for i in [4usize] {
            let r = &items[i];
            let seed = r["metric_seed"].as_u64().unwrap().to_string();
            let one = tmp(&format!("ds-robust-{method}-{i}.npy"));
            attrib::convert::write_npy_tensor(&one, &read_npy(&data).narrow(0, i as i64, 1)).unwrap();
            let (model, inp) = (digits_model(), one.display().to_string());
            for (metric, key) in [("infidelity", "infidelity"), ("sensitivity-max", "sensitivity_max")] {
                let mut args = vec!["metrics", "--metric", metric, "--model", &model, "--input", &inp, "--method", method, "--seed", &seed, "--device", "cpu", "--json"];
                args.extend(&extra);
                let o = run_ok(&args);
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let (want, got) = (v["values"][0].as_f64().unwrap(), r[key].as_f64().unwrap());
                // The run's attribution comes from the item's block of three rows, `attrib metrics`'
                // from the row alone: equal up to float32 rounding of the batched model calls.
                assert!(close(got, want, 1e-5), "{method} item {i} {metric}: run {got}, attrib metrics {want}");
            }
            // Faithfulness: the library call on the item and its recorded attribution, same seed.
            let x = read_npy(&one);
            let attr = read_npy(&out.join(r["output"].as_str().unwrap()));
            let model = attrib::TorchScriptModel::load(digits_model(), tch::Device::Cpu).unwrap();
            let params = attrib::metrics::FaithfulnessParams { seed: r["metric_seed"].as_u64().unwrap(), ..Default::default() };
            let target = attrib::Target::Class(r["target"].as_i64().unwrap());
            let f = attrib::metrics::faithfulness_correlation(&model, &attrib::Inputs::new(x), &target, &[attr], &params).unwrap()[0].unwrap();
            let got = r["faithfulness_correlation"].as_f64().unwrap();
            assert!(close(got, f, 1e-6), "{method} item {i} faithfulness: run {got}, library {f}");
        }
        // Seeds differ from item to item.
        let seeds: std::collections::BTreeSet<u64> = items.iter().map(|r| r["metric_seed"].as_u64().unwrap()).collect();
        assert_eq!(seeds.len(), 7);
        for key in ["infidelity", "sensitivity_max", "faithfulness_correlation"] {
            let v: Vec<f64> = items.iter().map(|r| r[key].as_f64().unwrap()).collect();
            let (mean, sd, lo, hi) = by_hand(&v);
            let m = &s["metrics"][key];
            assert_eq!(m["n"], 7, "{key}");
            for (name, got, want) in [("mean", &m["mean"], mean), ("sd", &m["sd"], sd), ("lo", &m["ci95"][0], lo), ("hi", &m["ci95"][1], hi)] {
                assert!((got.as_f64().unwrap() - want).abs() < 1e-12, "{method} {key} {name}: {got} vs {want}");
            }
        }
        assert_eq!(s["metrics"]["faithfulness_correlation"]["undefined"], 0);
    }
}

#[test]
fn robustness_metrics_resume_to_the_same_bytes() {
    let data = digit_rows("ds-robust-kill.npy", 6);
    let (whole, killed) = (tmp("ds-robust-whole"), tmp("ds-robust-killed"));
    for d in [&whole, &killed] {
        let _ = std::fs::remove_dir_all(d);
    }
    // A seeded method: max-sensitivity re-runs it on the perturbed copies.
    let flags = ["--method", "smoothgrad", "--seed", "3", "--nt-samples", "2", "--batch-items", "3", "--metrics", "4,infidelity,sensitivity-max"];
    run_dataset(&data, &whole, &flags);
    let args = dataset(&data, &killed, &flags);
    let died = std::process::Command::new(env!("CARGO_BIN_EXE_attrib")).args(&args).env(attrib_dataset::run::TEST_KILL_ENV, "1").output().unwrap();
    assert_eq!(died.status.code(), Some(137), "{}", String::from_utf8_lossy(&died.stderr));
    assert!(killed.join("blocks/000000.json").is_file() && !killed.join("blocks/000001.json").exists());
    run_dataset(&data, &killed, &flags);
    assert_eq!(files(&killed), files(&whole), "resumed records and attributions equal the uninterrupted run's bytes");
    let rec = summary(&whole.join("blocks/000001.json"));
    assert!(rec["items"][0]["infidelity"].is_f64() && rec["items"][0]["sensitivity_max"].is_f64() && rec["items"][0]["deletion_auc"].is_f64());
    // Another metric set (or seed) is another run: refused before anything is computed.
    for other in [vec!["--metrics", "4,infidelity"], vec!["--metrics", "4,infidelity,sensitivity-max", "--metrics-seed", "1"]] {
        let mut f = flags[..flags.len() - 2].to_vec();
        f.extend(other);
        let out = attrib().run(&dataset(&data, &whole, &f).iter().map(String::as_str).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("differs in metrics"), "{err}");
    }
    let bad = attrib().run(&dataset(&data, &tmp("ds-robust-bad"), &["--metrics", "infidelty"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown metric `infidelty`"));
}

#[test]
fn compare_dataset_aggregates_the_robustness_metrics() {
    let data = digit_rows("ds-robust-compare.npy", 6);
    let out = tmp("ds-robust-compare");
    let _ = std::fs::remove_dir_all(&out);
    let (model, input, o) = (digits_model(), data.display().to_string(), out.display().to_string());
    let mut args = vec!["compare-dataset", "--model", &model, "--input", &input, "--out-dir", &o, "--metrics", "5,infidelity,sensitivity-max", "--batch-items", "3"];
    args.extend(["--methods", "saliency,input-x-gradient"]);
    args.extend(DIGITS);
    let run = run_ok(&args);
    let table = String::from_utf8_lossy(&run.stderr);
    assert!(table.contains("infidelity (95 % CI)") && table.contains("sensitivity-max (95 % CI)"), "{table}");
    let c = summary(&out.join("comparison.json"));
    for row in c["methods"].as_array().unwrap() {
        let s = summary(&out.join(row["folder"].as_str().unwrap()).join("summary.json"));
        for key in ["deletion_auc", "insertion_auc", "infidelity", "sensitivity_max"] {
            assert_eq!(row[key], s["metrics"][key], "{key}");
            assert_eq!(row[key]["n"], 6);
        }
        let v: Vec<f64> = s["per_item"].as_array().unwrap().iter().map(|r| r["infidelity"].as_f64().unwrap()).collect();
        assert!((row["infidelity"]["mean"].as_f64().unwrap() - by_hand(&v).0).abs() < 1e-12);
    }
}

/// A model file replaced under the same name (a retrained checkpoint) makes another run: resuming
/// into the first run's folder is refused, naming the model, before the model is loaded. The
/// run's identity digests the same bytes its model is made from (read once).
#[test]
fn a_model_file_replaced_under_the_same_name_is_another_run() {
    let data = digit_rows("ds-replaced-model.npy", 4);
    let out = tmp("ds-replaced-model");
    let _ = std::fs::remove_dir_all(&out);
    let model = tmp("ds-replaced-model.pt");
    std::fs::copy(digits_model(), &model).unwrap();
    let mut args = dataset(&data, &out, &["--method", "saliency"]);
    assert_eq!(args[1], "--model");
    args[2] = model.display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&args);
    assert!(attrib().run(&args).status.success(), "the same file resumes (nothing left to do)");
    std::fs::copy(repo_root().join("examples/data/breast_cancer_mlp.pt"), &model).unwrap();
    let again = attrib().run(&args);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("holds another run") && err.contains("differs in model"), "{err}");
}

/// Other data under the same name and with the same number of rows (a regenerated `.npy`) is
/// another run: the identity digests the array's bytes, not only its row count.
#[test]
fn regenerated_data_of_the_same_size_is_another_run() {
    let data = digit_rows("ds-regenerated.npy", 4);
    let out = tmp("ds-regenerated");
    let _ = std::fs::remove_dir_all(&out);
    run_dataset(&data, &out, &["--method", "saliency"]);
    let other = read_npy(&repo_root().join("examples/data/digits.npy")).narrow(0, 4, 4);
    attrib::convert::write_npy_tensor(&data, &other).unwrap();
    let again = attrib().run(&dataset(&data, &out, &["--method", "saliency"]).iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("holds another run") && err.contains("differs in data"), "{err}");
}

/// A baseline file named in the spec is part of the identity by its bytes: replaced between a
/// killed run and its resumption, the resumption is refused instead of finishing the run with
/// another baseline.
#[test]
fn a_baseline_file_replaced_before_resuming_is_another_run() {
    let data = digit_rows("ds-baseline-file.npy", 8);
    let out = tmp("ds-baseline-file");
    let _ = std::fs::remove_dir_all(&out);
    let bg = tmp("ds-baseline-file-bg.npy");
    attrib::convert::write_npy_tensor(&bg, &tch::Tensor::zeros([1, 1, 16, 16], (tch::Kind::Float, tch::Device::Cpu))).unwrap();
    let flags = ["--method", "integrated-gradients", "--steps", "4", "--baseline", bg.to_str().unwrap(), "--batch-items", "4"];
    let args = dataset(&data, &out, &flags);
    let died = std::process::Command::new(env!("CARGO_BIN_EXE_attrib")).args(&args).env(attrib_dataset::run::TEST_KILL_ENV, "1").output().unwrap();
    assert_eq!(died.status.code(), Some(137), "{}", String::from_utf8_lossy(&died.stderr));
    attrib::convert::write_npy_tensor(&bg, &tch::Tensor::ones([1, 1, 16, 16], (tch::Kind::Float, tch::Device::Cpu))).unwrap();
    let again = attrib().run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("holds another run") && err.contains("spec_files"), "{err}");
    // With the file restored, the run resumes.
    attrib::convert::write_npy_tensor(&bg, &tch::Tensor::zeros([1, 1, 16, 16], (tch::Kind::Float, tch::Device::Cpu))).unwrap();
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The device kind is part of the identity: a run is not resumed on another kind of device
/// (CPU and CUDA kernels round differently). Without a GPU the test pins the identity's key.
#[test]
fn the_device_kind_is_part_of_the_run_identity() {
    let data = digit_rows("ds-device.npy", 2);
    let out = tmp("ds-device");
    let _ = std::fs::remove_dir_all(&out);
    run_dataset(&data, &out, &["--method", "saliency"]);
    let plan = summary(&out.join("plan.json"));
    assert_eq!(plan["identity"]["device"], "cpu", "{plan}");
}
