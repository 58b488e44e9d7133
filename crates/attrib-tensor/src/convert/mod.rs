//! Conversions between tch tensors, `ndarray` arrays and `.npy` files.
//!
//! The `.npy` header, read and checked before anything is allocated from it, is in its own
//! module (`npy_header`): [`read_npy_header`], [`NpyHeader`].

mod npy_header;

pub use npy_header::{read_npy_header, NpyHeader, MAX_NPY_HEADER_BYTES};

use attrib_core::{AttribError, Result, TorchResultExt};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use std::fs::File;
use std::io::BufReader;
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
