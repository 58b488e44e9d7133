//! `--format safetensors`: the attributions of a block in one `safetensors` file, one float32
//! tensor per item named by the item's id.
//!
//! The format (as the `safetensors` library reads it): an 8-byte little-endian header length,
//! a JSON header mapping each tensor name to `{"dtype": "F32", "shape": [...],
//! "data_offsets": [begin, end]}` (offsets into the data that follows), padded with spaces to a
//! multiple of 8 bytes, then the tensors' bytes back to back. Written through `attrib::fs` like
//! every other output (temporary name, sync, rename).

use attrib::convert::tensor_to_vec_f32;
use attrib::{AttribError, Result};
use serde_json::{json, Map, Value};
use std::path::Path;
use tch::Tensor;

/// How a run writes its attributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One `.npy` file per item: `attributions/<id>.npy`.
    #[default]
    Npy,
    /// One `safetensors` file per block: `blocks/NNNNNN.safetensors`, a tensor per item.
    Safetensors,
}

impl OutputFormat {
    /// `npy` or `safetensors`.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Npy => "npy",
            OutputFormat::Safetensors => "safetensors",
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = AttribError;

    fn from_str(s: &str) -> Result<OutputFormat> {
        match s {
            "npy" => Ok(OutputFormat::Npy),
            "safetensors" => Ok(OutputFormat::Safetensors),
            other => Err(AttribError::param("format", format!("`{other}`: use npy (one file per item) or safetensors (one file per block)"))),
        }
    }
}

/// The bytes of a `safetensors` file holding `tensors` (name, float32 tensor), in that order.
pub fn encode(tensors: &[(&str, &Tensor)]) -> Result<Vec<u8>> {
    let mut header = Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in tensors {
        let values = tensor_to_vec_f32(t)?;
        let begin = data.len();
        data.reserve(values.len() * 4);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let previous = header.insert(name.to_string(), json!({"dtype": "F32", "shape": t.size(), "data_offsets": [begin, data.len()]}));
        if previous.is_some() {
            return Err(AttribError::Internal(format!("tensor `{name}` twice in one safetensors file")));
        }
    }
    let mut text = serde_json::to_string(&Value::Object(header)).map_err(|e| AttribError::Internal(e.to_string()))?.into_bytes();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Write `tensors` as a `safetensors` file at `path`, atomically.
pub fn write(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let bytes = encode(tensors)?;
    let io = |e: std::io::Error| AttribError::Io { action: "cannot write", path: path.to_path_buf(), reason: attrib::fs::io_reason(&e) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    attrib::fs::write_atomic(path, |w| w.write_all(&bytes)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_data_follow_the_format() {
        let a = Tensor::from_slice(&[1.0f32, -2.5, 3.0]).reshape([1, 3]);
        let b = Tensor::from_slice(&[0.5f32]).reshape([1, 1]);
        let bytes = encode(&[("x/a.png", &a), ("b", &b)]).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["x/a.png"], json!({"dtype": "F32", "shape": [1, 3], "data_offsets": [0, 12]}));
        assert_eq!(header["b"]["data_offsets"], json!([12, 16]));
        let data = &bytes[8 + n..];
        assert_eq!(data.len(), 16);
        assert_eq!(f32::from_le_bytes(data[4..8].try_into().unwrap()), -2.5);
        assert_eq!(f32::from_le_bytes(data[12..16].try_into().unwrap()), 0.5);
        assert!("tiff".parse::<OutputFormat>().is_err());
    }
}
