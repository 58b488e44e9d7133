//! Conversions between tch tensors, `ndarray` arrays and `.npy` files.

use attrib_core::{AttribError, Result, TorchResultExt};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn host_flat(t: &Tensor, kind: Kind) -> Result<Tensor> {
    t.f_to_device(Device::Cpu)
        .and_then(|t| t.f_to_kind(kind))
        .and_then(|t| t.f_contiguous())
        .and_then(|t| t.f_reshape([-1]))
        .ctx("copying a tensor to the host")
}

/// The values of a tensor (any device, any dtype), row-major, as `f32`.
pub fn tensor_to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    Vec::<f32>::try_from(&host_flat(t, Kind::Float)?).ctx("copying a tensor to the host")
}

/// The values of a tensor (any device, any dtype), row-major, as `f64`.
pub fn tensor_to_vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Vec::<f64>::try_from(&host_flat(t, Kind::Double)?).ctx("copying a tensor to the host")
}

/// Copy a tensor (any device, any floating or integer dtype) into an `f32` array.
pub fn tensor_to_array_f32(t: &Tensor) -> Result<ArrayD<f32>> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), tensor_to_vec_f32(t)?).map_err(|e| AttribError::Conversion(e.to_string()))
}

/// Copy an `f32` array into a tensor on `device`.
pub fn array_to_tensor_f32(a: &ArrayD<f32>, device: Device) -> Result<Tensor> {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = a.iter().copied().collect();
    Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(device)).ctx("building a tensor")
}

/// Copy an `f64` array into a float64 tensor on `device`.
pub fn array_to_tensor_f64(a: &ArrayD<f64>, device: Device) -> Result<Tensor> {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f64> = a.iter().copied().collect();
    Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(device)).ctx("building a tensor")
}

/// Copy an `i64` array into a tensor on `device`.
pub fn array_to_tensor_i64(a: &ArrayD<i64>, device: Device) -> Result<Tensor> {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<i64> = a.iter().copied().collect();
    Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(device)).ctx("building a tensor")
}

fn io_err(action: &'static str, path: &Path, reason: impl ToString) -> AttribError {
    AttribError::Io { action, path: path.to_path_buf(), reason: reason.to_string() }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| io_err("cannot open", path, attrib_fs::io_reason(&e)))
}

/// Largest `.npy` header read: NumPy itself refuses headers over 10,000 bytes unless told
/// otherwise; anything near this limit is not a real header.
pub const MAX_NPY_HEADER_BYTES: usize = 1 << 20;

/// What a `.npy` file's header declares, checked against the file: [`read_npy_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`: 1.0, 2.0 or 3.0.
    pub version: (u8, u8),
    /// The dtype descriptor, e.g. `<f4`.
    pub descr: String,
    /// Column-major data.
    pub fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Bytes per element.
    pub item_size: usize,
    /// Where the data starts in the file.
    pub data_offset: u64,
    /// Bytes of data: the product of the shape times the item size, which equals the bytes
    /// after the header.
    pub data_bytes: u64,
}

impl NpyHeader {
    /// The dtype as NumPy names it (`float32`, `int64`, `uint8`, `bool`...), else the descriptor.
    pub fn dtype_name(&self) -> String {
        let code = self.descr.trim_start_matches(['<', '>', '|', '=']);
        let name = match code {
            "f2" => "float16",
            "f4" => "float32",
            "f8" => "float64",
            "f16" => "float128",
            "i1" => "int8",
            "i2" => "int16",
            "i4" => "int32",
            "i8" => "int64",
            "u1" => "uint8",
            "u2" => "uint16",
            "u4" => "uint32",
            "u8" => "uint64",
            "b1" => "bool",
            "c8" => "complex64",
            "c16" => "complex128",
            _ => return format!("`{}`", self.descr),
        };
        name.to_string()
    }

    /// The element code without the byte order (`f4`, `i8`...).
    fn code(&self) -> &str {
        self.descr.trim_start_matches(['<', '>', '|', '='])
    }
}

/// Bytes for people: `40 GB`, `192 bytes` (powers of 1000, as disks are sold).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v < 10.0 && v.fract() > 0.05 { 1 } else { 0 };
    format!("{v:.digits$} {}", UNITS[unit])
}

/// What a file that is not a `.npy` array looks like, from its first bytes.
fn sniff_foreign(head: &[u8]) -> Option<&'static str> {
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(b"\x89PNG") {
        Some("a PNG image")
    } else if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("a JPEG image")
    } else if starts(b"GIF8") {
        Some("a GIF image")
    } else if starts(b"BM") {
        Some("a BMP image")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("a TIFF image")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("a WebP image")
    } else if starts(b"PK\x03\x04") {
        Some("a ZIP archive (an .npz file from np.savez, or a TorchScript model?)")
    } else {
        None
    }
}

/// The values of a `.npy` header dictionary that attrib reads.
#[derive(Debug)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    Other(String),
}

/// Parse NumPy's header, a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header_dict(text: &str) -> std::result::Result<Vec<(String, PyValue)>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> std::result::Result<String, String> {
        let q = b[*i];
        let start = *i + 1;
        let end = text[start..].find(q as char).map(|k| start + k).ok_or("an unterminated string")?;
        *i = end + 1;
        Ok(text[start..end].to_string())
    };
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err("the header is not a dictionary".into());
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        match b.get(i) {
            Some(b'}') => break,
            Some(b'\'') | Some(b'"') => {}
            _ => return Err("a key of the header is not a string".into()),
        }
        let key = string(&mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return Err(format!("no `:` after the key `{key}`"));
        }
        i += 1;
        ws(&mut i);
        let value = match b.get(i) {
            Some(b'\'') | Some(b'"') => PyValue::Str(string(&mut i)?),
            Some(b'[') => {
                // A list: a structured dtype. Skip to the matching bracket.
                let mut depth = 0usize;
                let mut end = None;
                for (k, c) in text[i..].char_indices() {
                    match c {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(i + k);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or("an unterminated list")?;
                let list = text[i..=end].chars().take(40).collect();
                i = end + 1;
                PyValue::Other(list)
            }
            Some(b'(') => {
                let end = text[i..].find(')').map(|k| i + k).ok_or("an unterminated tuple")?;
                let dims = text[i + 1..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| d.trim_end_matches(['L', 'l']).parse::<u64>().map_err(|_| format!("`{d}` is not a dimension")))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                i = end + 1;
                PyValue::Tuple(dims)
            }
            _ => {
                let end = text[i..].find([',', '}']).map(|k| i + k).unwrap_or(b.len());
                let word = text[i..end].trim();
                i = end;
                match word {
                    "True" => PyValue::Bool(true),
                    "False" => PyValue::Bool(false),
                    other => PyValue::Other(other.chars().take(40).collect()),
                }
            }
        };
        out.push((key, value));
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err("entries of the header are not separated by commas".into()),
        }
    }
    Ok(out)
}

/// Bytes per element of a dtype descriptor, or why attrib cannot read it.
fn item_size(descr: &str) -> std::result::Result<usize, String> {
    let code = descr.trim_start_matches(['<', '>', '|', '=']);
    let (kind, digits) = code.split_at(code.len().min(1));
    if kind == "O" {
        return Err("the array holds Python objects (dtype=object), which attrib cannot read; save a numeric array".into());
    }
    let n: usize = digits.parse().map_err(|_| format!("the dtype `{descr}` is not a plain number type"))?;
    match kind {
        "f" | "i" | "u" | "b" | "c" | "S" | "V" if n > 0 => Ok(n),
        "U" if n > 0 => n.checked_mul(4).ok_or_else(|| format!("the dtype `{descr}` is too large")),
        _ => Err(format!("the dtype `{descr}` is not a plain number type")),
    }
}

/// Parse the start of a `.npy` file (`head`: its first bytes, at least the whole header when the
/// file has one) of `file_len` bytes, and check that the data the header declares is exactly what
/// the file holds, before anything is allocated for it.
fn parse_npy_header(head: &[u8], file_len: u64) -> std::result::Result<NpyHeader, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if !head.starts_with(MAGIC) {
        if MAGIC.starts_with(head) {
            return Err(format!("the file is {} long, shorter than a .npy header; it is truncated or empty", human_bytes(file_len)));
        }
        return Err(match sniff_foreign(head) {
            Some(what) => format!(
                "this is {what}, not a .npy array; attrib reads .npy arrays (np.save) and PNG or JPEG images (.png, .jpg, .jpeg): convert the file, e.g. with PIL `Image.open(path).save('image.png')`"
            ),
            None => "the file does not start with the .npy magic string; it is not a .npy array (np.save writes one)".into(),
        });
    }
    if head.len() < 10 {
        return Err("the file ends inside its .npy header; it is truncated".into());
    }
    let version = (head[6], head[7]);
    let (len, offset) = match version.0 {
        1 => (u16::from_le_bytes([head[8], head[9]]) as usize, 10usize),
        2 | 3 if head.len() >= 12 => (u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize, 12usize),
        2 | 3 => return Err("the file ends inside its .npy header; it is truncated".into()),
        v => return Err(format!("unsupported .npy format version {v}.{}; NumPy writes versions 1.0 to 3.0", version.1)),
    };
    if len > MAX_NPY_HEADER_BYTES {
        return Err(format!("the header claims to be {} long; the file is corrupt", human_bytes(len as u64)));
    }
    let data_offset = (offset + len) as u64;
    if data_offset > file_len || head.len() < offset + len {
        return Err(format!(
            "the header claims {} but the file holds {}; the file is truncated or corrupt",
            human_bytes(data_offset),
            human_bytes(file_len)
        ));
    }
    let raw = &head[offset..offset + len];
    let text = if version.0 == 3 {
        std::str::from_utf8(raw).map_err(|_| "the header is not UTF-8 text; the file is corrupt".to_string())?
    } else {
        std::str::from_utf8(raw).ok().filter(|t| t.is_ascii()).ok_or("the header is not ASCII text; the file is corrupt")?
    };
    let dict = parse_header_dict(text).map_err(|e| format!("cannot parse the header ({e}); the file is corrupt"))?;
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(PyValue::Str(d)) => d.clone(),
        Some(PyValue::Other(o)) if o.starts_with('[') => {
            return Err("the array has a structured dtype (named fields); attrib reads plain numeric arrays".into())
        }
        _ => return Err("the header has no dtype (`descr`); the file is corrupt".into()),
    };
    let fortran_order = match get("fortran_order") {
        Some(PyValue::Bool(b)) => *b,
        _ => return Err("the header has no `fortran_order`; the file is corrupt".into()),
    };
    let shape: Vec<u64> = match get("shape") {
        Some(PyValue::Tuple(s)) => s.clone(),
        _ => return Err("the header has no shape; the file is corrupt".into()),
    };
    let size = item_size(&descr)?;
    let mut header = NpyHeader {
        version,
        descr,
        fortran_order,
        shape: Vec::with_capacity(shape.len()),
        item_size: size,
        data_offset,
        data_bytes: 0,
    };
    let held = file_len - data_offset;
    let shown = format!("{shape:?}");
    let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let bytes = elements.and_then(|e| e.checked_mul(size as u64));
    let Some(bytes) = bytes else {
        return Err(format!(
            "the header declares shape {shown} of {}, more bytes than a computer can address, but the file holds {} of data; the file is corrupt",
            header.dtype_name(),
            human_bytes(held)
        ));
    };
    if bytes != held {
        let what = if bytes > held { "the file is truncated or corrupt" } else { "the file is corrupt (trailing bytes after the array)" };
        return Err(format!(
            "the header declares shape {shown} = {} of {} but the file holds {} of data; {what}",
            human_bytes(bytes),
            header.dtype_name(),
            human_bytes(held)
        ));
    }
    header.shape = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("the dimension {d} does not fit this machine's address space")))
        .collect::<std::result::Result<_, _>>()?;
    header.data_bytes = bytes;
    Ok(header)
}

/// Read and check the header of a `.npy` file: the magic string, the format version, the header
/// length, the dtype, the order and the shape, and that the shape's product times the dtype's
/// size is exactly the number of bytes after the header (with checked arithmetic). Nothing is
/// allocated from the header's numbers before this check, so a corrupt or hostile header (a
/// shape of 10⁹ × 10 in a 200-byte file) is an error, not an attempt at a 40 GB allocation.
pub fn read_npy_header(path: impl AsRef<Path>) -> Result<NpyHeader> {
    let path = path.as_ref();
    let mut f = open(path)?;
    let meta = f.metadata().map_err(|e| io_err("cannot open", path, attrib_fs::io_reason(&e)))?;
    if meta.is_dir() {
        return Err(io_err("cannot read .npy", path, "this is a folder; image folders are read as images only when they hold .png/.jpg/.jpeg files"));
    }
    let len = meta.len();
    let mut head = Vec::new();
    // The fixed part first, then the header it announces (bounded by MAX_NPY_HEADER_BYTES).
    let fixed = (&mut f).take(12).read_to_end(&mut head).map_err(|e| io_err("cannot read", path, attrib_fs::io_reason(&e)))?;
    if fixed >= 10 && head.starts_with(b"\x93NUMPY") {
        let (len_field, offset) = match head[6] {
            1 => (u16::from_le_bytes([head[8], head[9]]) as usize, 10),
            _ if fixed >= 12 => (u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize, 12),
            _ => (0, 12),
        };
        let want = (offset + len_field.min(MAX_NPY_HEADER_BYTES)).saturating_sub(head.len());
        (&mut f).take(want as u64).read_to_end(&mut head).map_err(|e| io_err("cannot read", path, attrib_fs::io_reason(&e)))?;
    }
    parse_npy_header(&head, len).map_err(|reason| io_err("cannot read .npy", path, reason))
}

/// Check that the host can hold `bytes` more (when the system says how much is available).
fn check_host_memory(path: &Path, header: &NpyHeader, bytes: u64) -> Result<()> {
    if let Some(available) = crate::memory::available_host_memory() {
        if bytes > available {
            return Err(io_err(
                "cannot read .npy",
                path,
                format!(
                    "the array {:?} of {} needs about {} of memory but only {} are available",
                    header.shape,
                    header.dtype_name(),
                    human_bytes(bytes),
                    human_bytes(available)
                ),
            ));
        }
    }
    Ok(())
}

fn read_as<T: ndarray_npy::ReadableElement>(path: &Path) -> Result<ArrayD<T>> {
    let reader = BufReader::new(open(path)?);
    ArrayD::<T>::read_npy(reader).map_err(|e| match e {
        ReadNpyError::Io(e) => io_err("cannot read .npy", path, attrib_fs::io_reason(&e)),
        e => io_err("cannot read .npy", path, e),
    })
}

/// Read a `.npy` file of floating-point values (`f32` or `f64`, converted to `f32`). The header is
/// checked against the file's size first ([`read_npy_header`]).
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    let h = read_npy_header(path)?;
    let elements = h.data_bytes / h.item_size as u64;
    match h.code() {
        "f4" => {
            check_host_memory(path, &h, h.data_bytes)?;
            read_as::<f32>(path)
        }
        "f8" => {
            check_host_memory(path, &h, h.data_bytes.saturating_add(elements.saturating_mul(4)))?;
            Ok(read_as::<f64>(path)?.mapv(|v| v as f32))
        }
        _ => Err(io_err(
            "cannot read .npy",
            path,
            format!(
                "the array holds {} values; expected float32 or float64 values (save with `np.save(path, x.astype(np.float32))`)",
                h.dtype_name()
            ),
        )),
    }
}

/// Read a `.npy` file of floating-point values (`f64`, or `f32` widened exactly to `f64`),
/// without the rounding to `f32` of [`read_npy_f32`].
pub fn read_npy_f64(path: impl AsRef<Path>) -> Result<ArrayD<f64>> {
    let path = path.as_ref();
    let h = read_npy_header(path)?;
    let elements = h.data_bytes / h.item_size as u64;
    match h.code() {
        "f8" => {
            check_host_memory(path, &h, h.data_bytes)?;
            read_as::<f64>(path)
        }
        "f4" => {
            check_host_memory(path, &h, h.data_bytes.saturating_add(elements.saturating_mul(8)))?;
            Ok(read_as::<f32>(path)?.mapv(f64::from))
        }
        _ => Err(io_err(
            "cannot read .npy",
            path,
            format!("the array holds {} values; expected float32 or float64 values", h.dtype_name()),
        )),
    }
}

/// Read a `.npy` file of integers (`i64`, `i32`, `u8`, ... converted to `i64`), for targets and masks.
pub fn read_npy_i64(path: impl AsRef<Path>) -> Result<ArrayD<i64>> {
    let path = path.as_ref();
    let h = read_npy_header(path)?;
    let elements = h.data_bytes / h.item_size as u64;
    let widened = h.data_bytes.saturating_add(elements.saturating_mul(8));
    macro_rules! read {
        ($t:ty) => {{
            check_host_memory(path, &h, widened)?;
            Ok(read_as::<$t>(path)?.mapv(|v| v as i64))
        }};
    }
    match h.code() {
        "i8" => {
            check_host_memory(path, &h, h.data_bytes)?;
            read_as::<i64>(path)
        }
        "i4" => read!(i32),
        "i2" => read!(i16),
        "i1" => read!(i8),
        "u4" => read!(u32),
        "u2" => read!(u16),
        "u1" => read!(u8),
        _ => Err(io_err(
            "cannot read .npy",
            path,
            format!("the array holds {} values; expected integer values (int64, int32, uint8, ...)", h.dtype_name()),
        )),
    }
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create folder for", path, attrib_fs::io_reason(&e)))?;
    }
    Ok(())
}

/// Write an `f32` array as `.npy` under a temporary name next to `path`, synced, not yet visible
/// at `path` ([`attrib_fs::Staged::commit`] puts it there). Missing folders are created.
pub fn stage_npy_f32(path: impl AsRef<Path>, a: &ArrayD<f32>) -> Result<attrib_fs::Staged> {
    let path = path.as_ref();
    create_parent(path)?;
    attrib_fs::stage(path, |w| {
        a.write_npy(w).map_err(|e| match e {
            ndarray_npy::WriteNpyError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
    })
    .map_err(|e| io_err("cannot write", path, attrib_fs::io_reason(&e)))
}

/// Write an `f32` array as `.npy`, atomically: a temporary file in the same folder, synced, then
/// renamed over `path`, so that a failed write (a full disk, an interrupted process) leaves the
/// previous file intact. Missing folders are created.
pub fn write_npy_f32(path: impl AsRef<Path>, a: &ArrayD<f32>) -> Result<()> {
    let path = path.as_ref();
    stage_npy_f32(path, a)?.commit().map_err(|e| io_err("cannot write", path, attrib_fs::io_reason(&e)))
}

/// Read a float `.npy` file into a tensor on `device`.
pub fn read_npy_tensor(path: impl AsRef<Path>, device: Device) -> Result<Tensor> {
    array_to_tensor_f32(&read_npy_f32(path)?, device)
}

/// Read a float `.npy` file into a float64 tensor on `device` (float32 files are widened
/// exactly), e.g. float64 reference values.
pub fn read_npy_tensor_f64(path: impl AsRef<Path>, device: Device) -> Result<Tensor> {
    array_to_tensor_f64(&read_npy_f64(path)?, device)
}

/// Write a tensor as a float32 `.npy` file, atomically (see [`write_npy_f32`]).
pub fn write_npy_tensor(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    write_npy_f32(path, &tensor_to_array_f32(t)?)
}

/// [`stage_npy_f32`] for a tensor: written and synced under a temporary name, committed later.
pub fn stage_npy_tensor(path: impl AsRef<Path>, t: &Tensor) -> Result<attrib_fs::Staged> {
    stage_npy_f32(path, &tensor_to_array_f32(t)?)
}
