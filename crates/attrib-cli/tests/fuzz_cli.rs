//! Fuzzing the binary with malformed `.npy` headers and corrupted image files, from a seeded
//! generator (`PROPTEST_RNG_SEED`, else a fixed seed), for at most about 25 seconds: the CLI never
//! dies by a signal (an abort) or with Rust's panic status 101; it exits 0 (the file was still
//! valid) or 1/2 with an `error:` line, and never reports an internal failure.

use attrib_tests::cli::tmp;
use attrib_tests::{fixtures, repo_root};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Time the fuzzing may take, all cases together.
const BUDGET: Duration = Duration::from_secs(25);

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261125u64);
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// A version-1 `.npy` file with header `dict` and `data`.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    let total = 10 + header.len() + 1;
    header.extend(vec![b' '; (64 - total % 64) % 64]);
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len().min(u16::MAX as usize) as u16).to_le_bytes());
    out.extend(header);
    out.extend(data);
    out
}

/// A malformed (or, by chance, valid) `.npy` file derived from `base`, a valid [8, 10] float32 file.
fn bad_npy(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let data = &base[128..];
    match rng.below(7) {
        0 => {
            let mut b = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(128);
                b[at] = rng.next() as u8;
            }
            b
        }
        1 => base[..rng.below(base.len())].to_vec(),
        2 => {
            let shapes = [
                "(1000000000, 10)", "(18446744073709551615, 18446744073709551615)", "(-8, 10)", "(8, 10.5)", "(8,", "()", "(0, 10)",
                "(4294967296, 4294967296, 4294967296)", "(8, 10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)", "[8, 10]", "(80,)",
            ];
            let descrs = ["'<f4'", "'<f8'", "'<f2'", "'|O'", "'<U3'", "[('a', '<f4')]", "''", "'>f4'", "'<i8'", "'|b1'", "'<c8'", "42"];
            let orders = ["False", "True", "None", "0"];
            let dict = format!("{{'descr': {}, 'fortran_order': {}, 'shape': {}, }}", rng.pick(&descrs), rng.pick(&orders), rng.pick(&shapes));
            let dict = if rng.below(5) == 0 { dict[..rng.below(dict.len())].to_string() } else { dict };
            npy(&dict, data)
        }
        3 => {
            // A random header length field.
            let mut b = base.to_vec();
            let len = rng.next() as u16;
            b[8..10].copy_from_slice(&len.to_le_bytes());
            b
        }
        4 => {
            // A random version, with a 4-byte length for versions 2 and 3.
            let mut b = base.to_vec();
            b[6] = *rng.pick(&[0u8, 1, 2, 3, 4, 255]);
            b
        }
        5 => {
            let mut b = base.to_vec();
            b.extend((0..1 + rng.below(64)).map(|_| rng.next() as u8));
            b
        }
        _ => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A corrupted image derived from `base` (a PNG or a JPEG).
fn bad_image(rng: &mut Rng, base: &[u8], png: bool) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 if png && b.len() > 33 => {
            // IHDR width and height (bytes 16..24) set to large values, CRC fixed or not.
            let w = *rng.pick(&[0u32, 1, 65535, 1 << 20, 0x7FFF_FFFF, u32::MAX]);
            let h = *rng.pick(&[0u32, 1, 65535, 1 << 20, 0x7FFF_FFFF, u32::MAX]);
            b[16..20].copy_from_slice(&w.to_be_bytes());
            b[20..24].copy_from_slice(&h.to_be_bytes());
            if rng.below(2) == 0 {
                let crc = crc32(&b[12..29]);
                b[29..33].copy_from_slice(&crc.to_be_bytes());
            }
        }
        2 => {
            // The JPEG frame header (SOF0/SOF2): height and width set to 65535.
            if let Some(i) = b.windows(2).position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2]) {
                if i + 9 < b.len() {
                    b[i + 5..i + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
                }
            }
        }
        3 => {
            let at = rng.below(b.len());
            let n = rng.below(b.len() - at);
            b.drain(at..at + n);
        }
        _ => {
            let at = rng.below(b.len());
            let junk: Vec<u8> = (0..1 + rng.below(256)).map(|_| rng.next() as u8).collect();
            b.splice(at..at, junk);
        }
    }
    b
}

#[test]
fn malformed_npy_and_image_files_never_crash_the_cli() {
    let bin = env!("CARGO_BIN_EXE_attrib");
    let mlp = fixtures().join("models/mlp/model.pt");
    let digits = repo_root().join("examples/data/digits_cnn.pt");
    let base_npy = std::fs::read(fixtures().join("models/mlp/input0.npy")).unwrap();
    assert_eq!(base_npy.len(), 128 + 8 * 10 * 4, "the base is an [8, 10] float32 file with a 128-byte header");
    let png = std::fs::read(fixtures().join("images/rgb.png")).unwrap();
    let jpg = std::fs::read(fixtures().join("images/photo.jpg")).unwrap();
    let out = tmp("fuzz_out.npy");
    let mut rng = Rng::new();
    let start = Instant::now();
    let (mut cases, mut exits) = (0usize, std::collections::BTreeMap::<i32, usize>::new());
    while start.elapsed() < BUDGET && cases < 400 {
        let (bytes, name, model, extra): (Vec<u8>, &str, &Path, &[&str]) = match rng.below(3) {
            0 => (bad_npy(&mut rng, &base_npy), "fuzz.npy", &mlp, &["--target", "0"]),
            1 => (bad_image(&mut rng, &png, true), "fuzz.png", &digits, &["--resize", "16x16", "--channels", "1"]),
            _ => (bad_image(&mut rng, &jpg, false), "fuzz.jpg", &digits, &["--resize", "16x16", "--channels", "1"]),
        };
        let input = tmp(name);
        std::fs::write(&input, &bytes).unwrap();
        let mut args = vec!["explain", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--device", "cpu"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let result = Command::new(bin).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        let keep = || {
            let kept = tmp(&format!("fuzz_case_{cases}_{name}"));
            std::fs::write(&kept, &bytes).unwrap();
            kept
        };
        let code = match result.status.code() {
            Some(c) => c,
            None => panic!("case {cases} ({name}, kept as {:?}): the CLI died by a signal: {}\n{stderr}", keep(), result.status),
        };
        assert!(code != 101, "case {cases} ({name}, kept as {:?}): exit 101 (a panic)\n{stderr}", keep());
        assert!(!stderr.contains("internal failure") && !stderr.contains("panicked"), "case {cases} ({name}, kept as {:?}): {stderr}", keep());
        match code {
            0 => {}
            1 | 2 => assert!(stderr.lines().any(|l| l.starts_with("error: ")), "case {cases} ({name}, kept as {:?}): no `error:` line\n{stderr}", keep()),
            other => panic!("case {cases} ({name}, kept as {:?}): exit {other}\n{stderr}", keep()),
        }
        *exits.entry(code).or_default() += 1;
        cases += 1;
    }
    eprintln!("{cases} malformed files in {:.1} s; exit codes {exits:?}", start.elapsed().as_secs_f64());
    assert!(cases >= 20, "only {cases} cases ran within the time budget");
    assert!(exits.get(&1).copied().unwrap_or(0) > cases / 2, "most malformed files are errors: {exits:?}");
}
