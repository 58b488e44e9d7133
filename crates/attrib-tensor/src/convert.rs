//! Conversions between tch tensors, `ndarray` arrays and `.npy` files.

use attrib_core::{AttribError, Result, TorchResultExt};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use std::fs::File;
use std::io::{BufReader, BufWriter};
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

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path).map(BufReader::new).map_err(|e| io_err("cannot open", path, e))
}

fn read_as<T: ndarray_npy::ReadableElement>(path: &Path) -> std::result::Result<ArrayD<T>, Option<AttribError>> {
    let reader = open(path).map_err(Some)?;
    match ArrayD::<T>::read_npy(reader) {
        Ok(a) => Ok(a),
        // Wrong dtype: let the caller try the next one.
        Err(ReadNpyError::WrongDescriptor(_)) => Err(None),
        Err(e) => Err(Some(io_err("cannot read .npy", path, e))),
    }
}

/// Read a `.npy` file of floating-point values (`f32` or `f64`, converted to `f32`).
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    match read_as::<f32>(path) {
        Ok(a) => return Ok(a),
        Err(Some(e)) => return Err(e),
        Err(None) => {}
    }
    match read_as::<f64>(path) {
        Ok(a) => Ok(a.mapv(|v| v as f32)),
        Err(Some(e)) => Err(e),
        Err(None) => Err(io_err(
            "cannot read .npy",
            path,
            "expected float32 or float64 values (save with `np.save(path, x.astype(np.float32))`)",
        )),
    }
}

/// Read a `.npy` file of floating-point values (`f64`, or `f32` widened exactly to `f64`),
/// without the rounding to `f32` of [`read_npy_f32`].
pub fn read_npy_f64(path: impl AsRef<Path>) -> Result<ArrayD<f64>> {
    let path = path.as_ref();
    match read_as::<f64>(path) {
        Ok(a) => return Ok(a),
        Err(Some(e)) => return Err(e),
        Err(None) => {}
    }
    match read_as::<f32>(path) {
        Ok(a) => Ok(a.mapv(f64::from)),
        Err(Some(e)) => Err(e),
        Err(None) => Err(io_err("cannot read .npy", path, "expected float32 or float64 values")),
    }
}

/// Read a `.npy` file of integers (`i64`, `i32`, `u8`, ... converted to `i64`), for targets and masks.
pub fn read_npy_i64(path: impl AsRef<Path>) -> Result<ArrayD<i64>> {
    let path = path.as_ref();
    macro_rules! try_kind {
        ($t:ty) => {
            match read_as::<$t>(path) {
                Ok(a) => return Ok(a.mapv(|v| v as i64)),
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
        };
    }
    try_kind!(i64);
    try_kind!(i32);
    try_kind!(u8);
    try_kind!(u16);
    try_kind!(i16);
    try_kind!(u32);
    try_kind!(i8);
    Err(io_err("cannot read .npy", path, "expected integer values (int64, int32, uint8, ...)"))
}

/// Write an `f32` array as `.npy`.
pub fn write_npy_f32(path: impl AsRef<Path>, a: &ArrayD<f32>) -> Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create folder for", path, e))?;
    }
    let file = File::create(path).map_err(|e| io_err("cannot create", path, e))?;
    a.write_npy(BufWriter::new(file)).map_err(|e| io_err("cannot write", path, e))
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

/// Write a tensor as a float32 `.npy` file.
pub fn write_npy_tensor(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    write_npy_f32(path, &tensor_to_array_f32(t)?)
}
