//! The `.npy` header: [`read_npy_header`] reads it and checks it against the file (magic string,
//! version, dtype, order, shape, and the bytes of data the shape declares) before anything is
//! allocated from its numbers.

use super::{human_bytes, io_err, open};
use attrib_core::Result;
use std::io::Read;
use std::path::Path;

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
    pub(super) fn code(&self) -> &str {
        self.descr.trim_start_matches(['<', '>', '|', '='])
    }
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
    skip_ws(b, &mut i);
    if b.get(i) != Some(&b'{') {
        return Err("the header is not a dictionary".into());
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        skip_ws(b, &mut i);
        match b.get(i) {
            Some(b'}') => break,
            Some(b'\'') | Some(b'"') => {}
            _ => return Err("a key of the header is not a string".into()),
        }
        let key = quoted(text, &mut i)?;
        skip_ws(b, &mut i);
        if b.get(i) != Some(&b':') {
            return Err(format!("no `:` after the key `{key}`"));
        }
        i += 1;
        skip_ws(b, &mut i);
        let value = parse_value(text, &mut i)?;
        out.push((key, value));
        skip_ws(b, &mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err("entries of the header are not separated by commas".into()),
        }
    }
    Ok(out)
}

/// Move `*i` past ASCII whitespace in `b`.
fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

/// The string whose opening quote is at `*i` in `text`; `*i` moves past its closing quote.
fn quoted(text: &str, i: &mut usize) -> std::result::Result<String, String> {
    let b = text.as_bytes();
    let q = b[*i];
    let start = *i + 1;
    let end = text[start..].find(q as char).map(|k| start + k).ok_or("an unterminated string")?;
    *i = end + 1;
    Ok(text[start..end].to_string())
}

/// The value of a header entry that starts at `*i` in `text`; `*i` moves past it.
fn parse_value(text: &str, i: &mut usize) -> std::result::Result<PyValue, String> {
    Ok(match text.as_bytes().get(*i) {
        Some(b'\'') | Some(b'"') => PyValue::Str(quoted(text, i)?),
        Some(b'[') => skip_list(text, i)?,
        Some(b'(') => parse_tuple(text, i)?,
        _ => parse_word(text, i),
    })
}

/// A list at `*i` in `text`, kept as its first characters; `*i` moves past it.
fn skip_list(text: &str, i: &mut usize) -> std::result::Result<PyValue, String> {
    // A list: a structured dtype. Skip to the matching bracket.
    let mut depth = 0usize;
    let mut end = None;
    for (k, c) in text[*i..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(*i + k);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.ok_or("an unterminated list")?;
    let list = text[*i..=end].chars().take(40).collect();
    *i = end + 1;
    Ok(PyValue::Other(list))
}

/// A tuple of dimensions at `*i` in `text` (a shape); `*i` moves past it.
fn parse_tuple(text: &str, i: &mut usize) -> std::result::Result<PyValue, String> {
    let end = text[*i..].find(')').map(|k| *i + k).ok_or("an unterminated tuple")?;
    let dims = text[*i + 1..end]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches(['L', 'l']).parse::<u64>().map_err(|_| format!("`{d}` is not a dimension")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    *i = end + 1;
    Ok(PyValue::Tuple(dims))
}

/// A bare word at `*i` in `text`, up to the next `,` or `}` (`True`, `False`, else kept as its
/// first characters); `*i` moves to that delimiter.
fn parse_word(text: &str, i: &mut usize) -> PyValue {
    let end = text[*i..].find([',', '}']).map(|k| *i + k).unwrap_or(text.len());
    let word = text[*i..end].trim();
    *i = end;
    match word {
        "True" => PyValue::Bool(true),
        "False" => PyValue::Bool(false),
        other => PyValue::Other(other.chars().take(40).collect()),
    }
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
    check_magic(head, file_len)?;
    let (version, text, data_offset) = header_text(head, file_len)?;
    let (descr, fortran_order, shape) = header_fields(text)?;
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
    let bytes = declared_bytes(&header, &shape, held)?;
    header.shape = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("the dimension {d} does not fit this machine's address space")))
        .collect::<std::result::Result<_, _>>()?;
    header.data_bytes = bytes;
    Ok(header)
}

/// Check that `head` starts with the `.npy` magic string; if not, say what the file (of
/// `file_len` bytes) is instead: truncated, an image or archive, or unknown.
fn check_magic(head: &[u8], file_len: u64) -> std::result::Result<(), String> {
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
    Ok(())
}

/// The format version, the header's text and where the data starts, after the magic string:
/// the header's length field is checked against [`MAX_NPY_HEADER_BYTES`] and the file's
/// `file_len` bytes, and the text against the encoding of its version.
fn header_text(head: &[u8], file_len: u64) -> std::result::Result<((u8, u8), &str, u64), String> {
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
    Ok((version, text, data_offset))
}

/// The dtype descriptor, the order and the shape from the header's text.
fn header_fields(text: &str) -> std::result::Result<(String, bool, Vec<u64>), String> {
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
    Ok((descr, fortran_order, shape))
}

/// The bytes of data that `shape` of `header`'s dtype takes (with checked arithmetic), which
/// must be the `held` bytes after the header.
fn declared_bytes(header: &NpyHeader, shape: &[u64], held: u64) -> std::result::Result<u64, String> {
    let size = header.item_size;
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
    Ok(bytes)
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
