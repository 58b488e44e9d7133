//! `.npy` files: headers are checked against the file's size before anything is allocated, and
//! writes replace files atomically.

use attrib_tensor::convert::{read_npy_f32, read_npy_f64, read_npy_header, read_npy_i64, write_npy_f32};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    attrib_scratch::scratch_dir().join(name)
}

/// A version 1.0 `.npy` file with header dictionary `dict` (padded as NumPy pads) and `data`.
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    let total = 10 + header.len() + 1;
    header.extend(vec![b' '; (64 - total % 64) % 64]);
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    out.extend(data);
    out
}

#[test]
fn a_header_that_declares_a_huge_shape_is_an_error_not_an_allocation() {
    // The file: 192 bytes whose header declares 10⁹ × 10 float32 values.
    let p = scratch("huge.npy");
    let bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 10), }", &[0u8; 64]);
    assert_eq!(bytes.len(), 192);
    std::fs::write(&p, &bytes).unwrap();
    let err = read_npy_f32(&p).unwrap_err().to_string();
    assert!(
        err.contains("the header declares shape [1000000000, 10] = 40 GB of float32 but the file holds 64 bytes of data; the file is truncated or corrupt"),
        "{err}"
    );
    assert!(read_npy_i64(&p).is_err() && read_npy_f64(&p).is_err());
    // A shape whose byte count overflows 64 bits.
    std::fs::write(&p, npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 4), }", &[])).unwrap();
    let err = read_npy_f32(&p).unwrap_err().to_string();
    assert!(err.contains("more bytes than a computer can address"), "{err}");
    // A header length beyond the file.
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend(u32::MAX.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let err = read_npy_f32(&p).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn truncated_padded_and_foreign_files_say_what_they_are() {
    let p = scratch("shapes.npy");
    let a = ArrayD::<f32>::from_shape_fn(IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f32);
    write_npy_f32(&p, &a).unwrap();
    let h = read_npy_header(&p).unwrap();
    assert_eq!((h.shape.clone(), h.descr.as_str(), h.data_bytes, h.dtype_name()), (vec![3, 4], "<f4", 48, "float32".to_string()));
    assert_eq!(read_npy_f32(&p).unwrap(), a);
    let full = std::fs::read(&p).unwrap();
    std::fs::write(&p, &full[..full.len() - 5]).unwrap();
    let err = read_npy_f32(&p).unwrap_err().to_string();
    assert!(err.contains("= 48 bytes of float32 but the file holds 43 bytes of data; the file is truncated"), "{err}");
    let mut longer = full.clone();
    longer.extend([0u8; 8]);
    std::fs::write(&p, &longer).unwrap();
    assert!(read_npy_f32(&p).unwrap_err().to_string().contains("trailing bytes"));
    std::fs::write(&p, &full[..7]).unwrap();
    assert!(read_npy_f32(&p).unwrap_err().to_string().contains("truncated"));
    std::fs::write(&p, b"").unwrap();
    assert!(read_npy_f32(&p).unwrap_err().to_string().contains("truncated or empty"));
    for (bytes, what) in [
        (b"BM\x3a\0\0\0\0\0".to_vec(), "a BMP image"),
        (b"GIF89a\x01\0".to_vec(), "a GIF image"),
        (b"RIFF\0\0\0\0WEBPVP8 ".to_vec(), "a WebP image"),
        (b"II*\0\x08\0\0\0".to_vec(), "a TIFF image"),
        (b"PK\x03\x04rest".to_vec(), "a ZIP archive"),
    ] {
        std::fs::write(&p, &bytes).unwrap();
        let err = read_npy_f32(&p).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains("PNG or JPEG"), "{err}");
    }
    // Object and structured dtypes, and integers where floats are expected.
    std::fs::write(&p, npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", &[0u8; 16])).unwrap();
    assert!(read_npy_f32(&p).unwrap_err().to_string().contains("Python objects"));
    std::fs::write(&p, npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", &[0u8; 4])).unwrap();
    assert!(read_npy_f32(&p).unwrap_err().to_string().contains("structured dtype"));
    std::fs::write(&p, npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", &[0u8; 16])).unwrap();
    let err = read_npy_f32(&p).unwrap_err().to_string();
    assert!(err.contains("holds int64 values; expected float32 or float64"), "{err}");
    assert_eq!(read_npy_i64(&p).unwrap().shape(), &[2]);
    // Fortran order and a float64 file read as float32.
    let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&p, npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", &data)).unwrap();
    let a = read_npy_f32(&p).unwrap();
    assert_eq!(a[[0, 1]], 3.0, "column-major data");
}

#[test]
fn a_failed_write_keeps_the_previous_file() {
    let p = scratch("keep.npy");
    let a = ArrayD::<f32>::ones(IxDyn(&[2, 2]));
    write_npy_f32(&p, &a).unwrap();
    let before = std::fs::read(&p).unwrap();
    // A folder where the file's folder should be: the write fails, nothing changes.
    let bad = p.join("inside.npy");
    assert!(write_npy_f32(&bad, &a).is_err());
    assert_eq!(std::fs::read(&p).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(attrib_fs::TEMP_SUFFIX))
        .collect();
    assert!(leftovers.is_empty());
}

/// One byte flipped, a byte cut or a header field rewritten: the readers return an error or an
/// array, never panic or abort, and never allocate more than the file holds.
fn mutate(base: &[u8], kind: u8, at: usize, byte: u8) -> Vec<u8> {
    let mut b = base.to_vec();
    let at = at % b.len().max(1);
    match kind % 4 {
        0 => b[at] = byte,
        1 => b.truncate(at),
        2 => b.insert(at, byte),
        _ => {
            // Rewrite the shape with large numbers.
            let text = String::from_utf8_lossy(&b).replace("(3, 4)", &format!("({}, {})", u64::MAX / (byte as u64 + 1), at));
            b = text.into_bytes();
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn malformed_headers_never_panic(kind in 0u8..4, at in 0usize..200, byte in any::<u8>()) {
        let base = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", &[0u8; 48]);
        let p = scratch(&format!("fuzz-{kind}-{at}-{byte}.npy"));
        std::fs::write(&p, mutate(&base, kind, at, byte)).unwrap();
        let r = std::panic::catch_unwind(|| (read_npy_f32(&p).map(|a| a.len()), read_npy_i64(&p).map(|a| a.len())));
        prop_assert!(r.is_ok(), "a reader panicked");
        if let Ok((Ok(n), _)) = r {
            prop_assert!(n * 4 <= std::fs::metadata(&p).unwrap().len() as usize);
        }
        let _ = std::fs::remove_file(&p);
    }
}
