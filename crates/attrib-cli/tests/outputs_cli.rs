//! Nothing lost: output paths are checked before any work, outputs are written last and
//! atomically, and a failing run (a bad path, a heat map that cannot be drawn, a full disk, a
//! killed process) leaves every existing file as it was.

use attrib::convert::{read_npy_f32, write_npy_f32};
use attrib_tests::cli::{cli, tmp, Cli};
use attrib_tests::{fixtures, repo_root};
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn attrib() -> Cli<'static> {
    cli(env!("CARGO_BIN_EXE_attrib"))
}

fn model(name: &str) -> String {
    fixtures().join("models").join(name).join("model.pt").display().to_string()
}

fn input(name: &str, i: usize) -> String {
    fixtures().join("models").join(name).join(format!("input{i}.npy")).display().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The run failed with exit 1 and an `error:` line that mentions `needle`.
fn assert_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr: {stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no `error:` line: {stderr}"));
    assert!(line.to_lowercase().contains(&needle.to_lowercase()), "the error should mention `{needle}`: {line}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal failure"), "{stderr}");
}

/// A file with known content that a failing run must leave alone.
fn precious(name: &str, content: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(attrib::fs::TEMP_SUFFIX))
        .collect()
}

#[test]
fn out_equal_to_the_input_fails_before_work_and_leaves_the_input() {
    let x = tmp("in_is_out.npy");
    std::fs::copy(input("mlp", 0), &x).unwrap();
    let before = std::fs::read(&x).unwrap();
    // The same file through another spelling of its path.
    let same = x.parent().unwrap().join(".").join("in_is_out.npy");
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", s(&x), "--out", s(&same)]);
    assert_error(&out, "same file as --input");
    assert_eq!(std::fs::read(&x).unwrap(), before, "the input is untouched");
    // The model file is an input too.
    let m = tmp("model_copy.pt");
    std::fs::copy(model("mlp"), &m).unwrap();
    let out = attrib().run(&["explain", "--model", s(&m), "--input", &input("mlp", 0), "--out", s(&m)]);
    assert_error(&out, "same file as --model");
    assert_eq!(std::fs::read(&m).unwrap(), std::fs::read(model("mlp")).unwrap());
}

#[test]
fn outputs_may_not_name_the_same_file() {
    let o = precious("same_out.npy", b"keep me");
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--out", s(&o), "--heatmap", s(&o)]);
    assert_error(&out, "--out and --heatmap name the same file");
    let out = attrib().run(&[
        "explain", "--model", &model("two_input"), "--input", &input("two_input", 0), "--input", &input("two_input", 1),
        "--target", "0", "--out", s(&o), "--out", s(&o),
    ]);
    assert_error(&out, "two --out paths name the same file");
    assert_eq!(std::fs::read(&o).unwrap(), b"keep me");
}

#[test]
fn heatmap_on_a_non_image_input_fails_before_out_is_written() {
    let o = precious("heat_out.npy", b"the previous result");
    let h = tmp("heat_out.png");
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--out", s(&o), "--heatmap", s(&h)]);
    assert_error(&out, "heat maps need image inputs");
    assert_eq!(std::fs::read(&o).unwrap(), b"the previous result", "--out keeps its previous content");
    assert!(!h.exists());
}

#[test]
fn an_unwritable_second_output_is_found_before_the_first_is_written() {
    let first = precious("two_first.npy", b"first, unchanged");
    // The second output's folder is a file: no one (root included) can create anything in it.
    let blocker = precious("two_blocker", b"a file, not a folder");
    let second = blocker.join("second.npy");
    let out = attrib().run(&[
        "explain", "--model", &model("two_input"), "--input", &input("two_input", 0), "--input", &input("two_input", 1),
        "--target", "0", "--out", s(&first), "--out", s(&second),
    ]);
    assert_error(&out, "second.npy");
    assert_eq!(std::fs::read(&first).unwrap(), b"first, unchanged");
    // A read-only file is refused as well, before any work.
    let ro = precious("two_readonly.npy", b"read-only");
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&ro, perm).unwrap();
    let out = attrib().run(&[
        "explain", "--model", &model("two_input"), "--input", &input("two_input", 0), "--input", &input("two_input", 1),
        "--target", "0", "--out", s(&first), "--out", s(&ro),
    ]);
    assert_error(&out, "read-only");
    assert_eq!(std::fs::read(&first).unwrap(), b"first, unchanged");
}

#[test]
fn an_unwritable_out_is_found_before_the_model_is_even_loaded() {
    // The model does not exist: the output's error comes first, so no work was done before it.
    let blocker = precious("early_blocker", b"file");
    let out = attrib().run(&["explain", "--model", "/nonexistent/model.pt", "--input", &input("mlp", 0), "--out", s(&blocker.join("x.npy"))]);
    assert_error(&out, "cannot write");
    // A folder as --out.
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--out", s(blocker.parent().unwrap())]);
    assert_error(&out, "is a folder");
}

#[test]
fn compare_refuses_an_out_dir_that_would_overwrite_an_input() {
    let dir = tmp("compare_self");
    std::fs::create_dir_all(&dir).unwrap();
    let x = dir.join("report.json");
    write_npy_f32(&x, &read_npy_f32(input("mlp", 0)).unwrap()).unwrap();
    let before = std::fs::read(&x).unwrap();
    let out = attrib().run(&["compare", "--model", &model("mlp"), "--input", s(&x), "--out-dir", s(&dir), "--methods", "saliency", "--quiet"]);
    assert_error(&out, "same file as --input");
    assert_eq!(std::fs::read(&x).unwrap(), before);
    let fig = dir.join("input0_row0.png");
    std::fs::copy(fixtures().join("images/grey.png"), &fig).unwrap();
    let out = attrib().run(&[
        "compare", "--model", s(&repo_root().join("examples/data/digits_cnn.pt")), "--input", s(&fig), "--resize", "16",
        "--out-dir", s(&dir), "--methods", "saliency", "--quiet",
    ]);
    assert_error(&out, "report figure");
}

#[test]
fn compare_writes_its_report_atomically() {
    let dir = tmp("compare_atomic");
    let out = attrib().run(&["compare", "--model", &model("mlp"), "--input", &input("mlp", 0), "--out-dir", s(&dir), "--methods", "saliency", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["report.html", "report.json", "input0_row0_saliency.png"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,iVBOR"), "figures embedded from memory");
    assert!(temporaries(&dir).is_empty());
}

/// A small tmpfs, unmounted on drop; `None` where the test cannot mount one (not root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("attrib-cli-tmpfs-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            eprintln!("note: cannot mount a tmpfs here (needs root); attrib-fs's unit tests cover a writer that fails part-way");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_during_the_write_leaves_the_previous_output() {
    let Some(fs) = Tmpfs::mount("full", "256k") else { return };
    let o = fs.0.join("attr.npy");
    // The previous good result: zeros of the output's shape.
    write_npy_f32(&o, &ArrayD::<f32>::zeros(IxDyn(&[8, 10]))).unwrap();
    let before = std::fs::read(&o).unwrap();
    // Fill the disk.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(fs.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
    }
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--target", "0", "--out", s(&o)]);
    assert_error(&out, "disk is full");
    assert_eq!(std::fs::read(&o).unwrap(), before, "the previous output is intact");
    assert!(temporaries(&fs.0).is_empty(), "no temporary file left: {:?}", temporaries(&fs.0));
    // With space again, the run succeeds.
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--target", "0", "--out", s(&o)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(&o).unwrap(), before);
}

/// Kill the process (SIGKILL, or SIGINT as Ctrl-C sends) while it writes a large output, a few
/// times at different moments: the target is always the old file or the new one, complete.
#[test]
fn an_interrupted_write_never_leaves_a_truncated_output() {
    let rows = 2_000_000;
    let x = tmp("kill_in.npy");
    let a = ArrayD::<f32>::from_shape_fn(IxDyn(&[rows, 10]), |i| ((i[0] * 7 + i[1] * 3) % 17) as f32 / 17.0 - 0.5);
    write_npy_f32(&x, &a).unwrap();
    let dir = tmp("kill_out");
    std::fs::create_dir_all(&dir).unwrap();
    let o = dir.join("attr.npy");
    let args = |out: &Path| -> Vec<String> {
        [
            "explain", "--model", &model("mlp"), "--input", s(&x), "--target", "0", "--out", s(out), "--device", "cpu",
            "--max-batch", "2000000", "--memory-format", "contiguous", "--no-freeze",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect()
    };
    // The complete new file, for comparison.
    let reference = dir.join("reference.npy");
    let out = attrib().run(&args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new = std::fs::read(&reference).unwrap();
    let old = b"the previous attributions".to_vec();
    let mut outcomes = Vec::new();
    for (i, delay_ms) in [0u64, 5, 15, 40, 100, 200].into_iter().enumerate() {
        std::fs::write(&o, &old).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_attrib")).args(args(&o)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Wait until the output's temporary file appears: the write has begun.
        let start = Instant::now();
        let mut writing = false;
        while start.elapsed() < Duration::from_secs(60) {
            if !temporaries(&dir).is_empty() {
                writing = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        if i % 2 == 0 {
            let _ = child.kill();
        } else {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        }
        let status = child.wait().unwrap();
        let now = std::fs::read(&o).unwrap();
        let which = if now == old {
            "old"
        } else if now == new {
            "new"
        } else {
            panic!("try {i} (killed {delay_ms} ms into the write): the output is neither the old file nor the new one ({} bytes of {})", now.len(), new.len())
        };
        outcomes.push((writing, delay_ms, which, status.code()));
    }
    eprintln!("(caught writing, delay ms, target, exit code): {outcomes:?}");
    // A killed writer may leave its temporary file (the target is intact); the next write of
    // the same target deletes it.
    let out = attrib().run(&args(&o).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&o).unwrap(), new);
    assert!(temporaries(&dir).is_empty(), "temporary files left after a complete write: {:?}", temporaries(&dir));
    // 240 MB of scratch files: not left in the temp folder.
    let _ = std::fs::remove_file(&x);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(outcomes.iter().any(|o| o.0), "no try caught the process while writing: {outcomes:?}");
}

#[test]
fn huge_resizes_and_headers_are_errors_not_aborts() {
    let grey = fixtures().join("images/grey.png");
    let m = repo_root().join("examples/data/digits_cnn.pt");
    for size in ["100000x100000", "1000000000", "18446744073709551615"] {
        let out = attrib().run(&["explain", "--model", s(&m), "--input", s(&grey), "--resize", size, "--out", s(&tmp("resize.npy"))]);
        assert_error(&out, "resize");
    }
    // The 192-byte file whose header declares 10⁹ × 10 float32 values.
    let mut header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 10), }".to_vec();
    header.resize(117, b' ');
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header);
    bytes.extend([0u8; 64]);
    let p = tmp("huge_header.npy");
    std::fs::write(&p, &bytes).unwrap();
    let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", s(&p), "--out", s(&tmp("huge_out.npy"))]);
    assert_error(&out, "the header declares shape [1000000000, 10] = 40 GB of float32 but the file holds 64 bytes of data");
}

#[test]
fn unsupported_image_formats_and_link_loops_say_what_they_are() {
    let m = repo_root().join("examples/data/digits_cnn.pt");
    for ext in ["bmp", "webp", "tiff", "gif"] {
        let p = tmp(&format!("picture.{ext}"));
        std::fs::write(&p, b"not decoded anyway").unwrap();
        let out = attrib().run(&["explain", "--model", s(&m), "--input", s(&p), "--out", s(&tmp("fmt.npy"))]);
        assert_error(&out, "images are not supported; attrib reads PNG and JPEG");
    }
    // An image under a .npy name is recognised by its content.
    let p = tmp("image_named.npy");
    std::fs::copy(fixtures().join("images/grey.png"), &p).unwrap();
    let out = attrib().run(&["explain", "--model", s(&m), "--input", s(&p), "--out", s(&tmp("fmt.npy"))]);
    assert_error(&out, "this is a PNG image, not a .npy array");
    #[cfg(unix)]
    {
        let (l1, l2) = (tmp("loop_a"), tmp("loop_b"));
        let _ = std::fs::remove_file(&l1);
        let _ = std::fs::remove_file(&l2);
        std::os::unix::fs::symlink(&l2, &l1).unwrap();
        std::os::unix::fs::symlink(&l1, &l2).unwrap();
        let out = attrib().run(&["explain", "--model", s(&l1), "--input", &input("mlp", 0), "--out", s(&tmp("loop.npy"))]);
        assert_error(&out, "loop of symbolic links");
        let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", s(&l1), "--out", s(&tmp("loop.npy"))]);
        assert_error(&out, "loop of symbolic links");
        let out = attrib().run(&["explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--out", s(&l1)]);
        assert_error(&out, "symbolic links");
    }
}

#[test]
fn a_two_input_model_given_one_input_reports_no_cpp_stack() {
    let out = attrib().run(&["explain", "--model", &model("two_input"), "--input", &input("two_input", 0), "--target", "0", "--out", s(&tmp("one_of_two.npy"))]);
    assert_error(&out, "model failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("frame #") && !stderr.contains("c10::") && !stderr.contains(".so)"), "{stderr}");
}

#[test]
fn files_named_inside_json_param_values_are_inputs_too() {
    // A JSON list of baselines in --param: its file is read, so --out may not replace it.
    let bg = tmp("param_list_bg.npy");
    write_npy_f32(&bg, &read_npy_f32(input("mlp", 0)).unwrap()).unwrap();
    let before = std::fs::read(&bg).unwrap();
    for value in [format!("baselines=[{:?}]", s(&bg)), format!("baselines={:?}", s(&bg))] {
        let out = attrib().run(&[
            "explain", "--model", &model("mlp"), "--input", &input("mlp", 0), "--method", "integrated-gradients", "--param", &value,
            "--device", "cpu", "--out", s(&bg),
        ]);
        assert_error(&out, "same file as --param baselines");
        assert_eq!(std::fs::read(&bg).unwrap(), before, "{value}: the baseline is untouched");
    }
    // The same for a file named in a `compare --config` method spec.
    let dir = tmp("compare_config_files");
    std::fs::create_dir_all(&dir).unwrap();
    let inside = dir.join("report.json");
    std::fs::copy(&bg, &inside).unwrap();
    let config = tmp("compare_config_files.json");
    let spec = serde_json::json!([{"method": "integrated-gradients", "baselines": [s(&inside)]}]);
    std::fs::write(&config, spec.to_string()).unwrap();
    let out = attrib().run(&["compare", "--model", &model("mlp"), "--input", &input("mlp", 0), "--out-dir", s(&dir), "--config", s(&config), "--quiet"]);
    assert_error(&out, "same file as --config baselines");
    assert_eq!(std::fs::read(&inside).unwrap(), before, "the baseline in the config is untouched");
}
