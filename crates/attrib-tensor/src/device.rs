//! Device selection: `auto`, `cpu`, `cuda`, `cuda:N`.

use attrib_core::{AttribError, Result};
use std::fmt;
use std::str::FromStr;
use tch::Device;

/// A device requested by the user, before checking that it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The first CUDA device when one is available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = AttribError;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match t.strip_prefix("cuda:") {
                Some(n) => n.parse::<usize>().map(DeviceSpec::Cuda).map_err(|_| AttribError::UnknownDevice(s.to_string())),
                None => Err(AttribError::UnknownDevice(s.to_string())),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The concrete device, or an error when it is not present on this machine. For `auto` and
    /// `cuda`, libtorch's CUDA backend is loaded first ([`load_cuda_backend`]).
    pub fn resolve(self) -> Result<Device> {
        self.choose().map(|c| c.device)
    }

    /// [`DeviceSpec::resolve`], with why that device: for reports and `--device auto`.
    pub fn choose(self) -> Result<DeviceChoice> {
        let choice = |device: Device, reason: String| DeviceChoice { requested: self, device, reason };
        match self {
            DeviceSpec::Cpu => Ok(choice(Device::Cpu, "requested".into())),
            DeviceSpec::Auto => {
                let backend = load_cuda_backend();
                if backend.is_loaded() && tch::Cuda::is_available() {
                    let count = tch::Cuda::device_count();
                    Ok(choice(Device::Cuda(0), format!("auto: the first of {count} CUDA device(s)")))
                } else {
                    Ok(choice(Device::Cpu, format!("auto: {}", backend.why_no_cuda())))
                }
            }
            DeviceSpec::Cuda(n) => {
                let backend = load_cuda_backend();
                if !backend.is_loaded() || !tch::Cuda::is_available() {
                    return Err(AttribError::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: format!("{}; use `cpu` or `auto`", backend.why_no_cuda()),
                    });
                }
                let count = tch::Cuda::device_count() as usize;
                if n >= count {
                    return Err(AttribError::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: format!("this machine has {count} CUDA device(s), numbered from 0"),
                    });
                }
                Ok(choice(Device::Cuda(n), "requested".into()))
            }
        }
    }
}

/// The device a [`DeviceSpec`] resolved to, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceChoice {
    /// What was asked for.
    pub requested: DeviceSpec,
    /// The device.
    pub device: Device,
    /// Why this device (for `auto`: which CUDA devices were seen, or why none).
    pub reason: String,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", device_name(self.device), self.reason)
    }
}

/// Whether libtorch's CUDA backend (`libtorch_cuda.so`) is in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaBackend {
    /// Loaded, from this file.
    Loaded(std::path::PathBuf),
    /// The linked libtorch ships no CUDA backend (a CPU-only build).
    NotShipped,
    /// It ships one but it could not be loaded (missing CUDA runtime libraries...).
    Failed(String),
}

impl CudaBackend {
    /// The backend is in the process.
    pub fn is_loaded(&self) -> bool {
        matches!(self, CudaBackend::Loaded(_))
    }

    fn why_no_cuda(&self) -> String {
        match self {
            CudaBackend::Loaded(_) => "libtorch's CUDA backend is loaded but sees no CUDA device on this machine".into(),
            CudaBackend::NotShipped => "the linked libtorch is a CPU-only build (no libtorch_cuda.so beside libtorch_cpu.so)".into(),
            CudaBackend::Failed(why) => format!("libtorch's CUDA backend could not be loaded: {why}"),
        }
    }
}

/// Load libtorch's CUDA backend into the process, once, if the linked libtorch ships one.
///
/// Binaries link only the libtorch libraries whose symbols they use (`libtorch_cpu.so`,
/// `libc10.so`); `libtorch_cuda.so` registers the CUDA backend from its static initialisers but
/// exports nothing they call, so the linker drops it and libtorch then sees no CUDA device. This
/// opens `libtorch_cuda.so` from the folder of the `libtorch_cpu.so` the process runs on (found in
/// `/proc/self/maps`), globally, before anything asks libtorch about CUDA — what `import torch`
/// does in Python. Every binary that resolves a [`DeviceSpec`] gets it, with no environment
/// variable; `--device cpu` never loads it (it costs about 0.15 s and 350 MB of mappings at start
/// on a machine without a GPU).
pub fn load_cuda_backend() -> &'static CudaBackend {
    BACKEND.get_or_init(open_cuda_backend)
}

/// What [`load_cuda_backend`] found, or `None` when nothing has asked for it yet (`--device cpu`).
pub fn cuda_backend_state() -> Option<&'static CudaBackend> {
    BACKEND.get()
}

static BACKEND: std::sync::OnceLock<CudaBackend> = std::sync::OnceLock::new();

/// The folder of the `libtorch_cpu.so` mapped into this process.
pub fn libtorch_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}

/// Whether a shared library whose file name is `name` is mapped into this process.
pub fn library_mapped(name: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.lines().filter_map(|l| l.split_whitespace().nth(5)).any(|p| p.rsplit('/').next() == Some(name)))
        .unwrap_or(false)
}

/// Free and total memory of a CUDA device in bytes, as the CUDA driver reports them
/// (`cudaMemGetInfo`, found in the CUDA runtime that libtorch's CUDA backend loads). `None` off
/// CUDA, without the backend, or when the call fails.
pub fn cuda_memory(device: Device) -> Option<(u64, u64)> {
    let Device::Cuda(index) = device else { return None };
    if !load_cuda_backend().is_loaded() {
        return None;
    }
    cuda_runtime::mem_get_info(i32::try_from(index).ok()?)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod cuda_runtime {
    use std::ffi::{c_int, c_void, CString};

    /// A function of the CUDA runtime by name: from the global scope (the runtime came in with
    /// `libtorch_cuda.so`, opened globally), else from the mapped `libcudart.so*` itself.
    fn symbol(name: &str) -> Option<*mut c_void> {
        let c_name = CString::new(name).ok()?;
        // SAFETY: dlsym on the default scope with a valid NUL-terminated name.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c_name.as_ptr()) };
        if !f.is_null() {
            return Some(f);
        }
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let path = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.contains("/libcudart.so"))?;
        let c_path = CString::new(path).ok()?;
        // SAFETY: RTLD_NOLOAD only returns a handle to a library already in the process.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        if handle.is_null() {
            return None;
        }
        // SAFETY: as above, on a valid handle.
        let f = unsafe { libc::dlsym(handle, c_name.as_ptr()) };
        (!f.is_null()).then_some(f)
    }

    /// `cudaMemGetInfo` on device `index`, restoring the calling thread's current device.
    pub fn mem_get_info(index: i32) -> Option<(u64, u64)> {
        type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;
        type GetDevice = unsafe extern "C" fn(*mut c_int) -> c_int;
        type SetDevice = unsafe extern "C" fn(c_int) -> c_int;
        // SAFETY: the symbols are the CUDA runtime's, with these C signatures (cuda_runtime_api.h).
        unsafe {
            let mem: MemGetInfo = std::mem::transmute(symbol("cudaMemGetInfo")?);
            let get: GetDevice = std::mem::transmute(symbol("cudaGetDevice")?);
            let set: SetDevice = std::mem::transmute(symbol("cudaSetDevice")?);
            let mut current: c_int = 0;
            if get(&mut current) != 0 {
                return None;
            }
            if current != index && set(index) != 0 {
                return None;
            }
            let (mut free, mut total) = (0usize, 0usize);
            let ok = mem(&mut free, &mut total) == 0;
            if current != index {
                set(current);
            }
            ok.then_some((free as u64, total as u64))
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod cuda_runtime {
    pub fn mem_get_info(_index: i32) -> Option<(u64, u64)> {
        None
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn open_cuda_backend() -> CudaBackend {
    let Some(dir) = libtorch_dir() else {
        return CudaBackend::Failed("libtorch_cpu.so is not mapped from a file (statically linked?)".into());
    };
    let path = dir.join("libtorch_cuda.so");
    if !path.exists() {
        return CudaBackend::NotShipped;
    }
    if library_mapped("libtorch_cuda.so") {
        return CudaBackend::Loaded(path);
    }
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return CudaBackend::Failed(format!("path {path:?} holds a NUL byte"));
    };
    // SAFETY: dlopen with a valid NUL-terminated path; the handle is kept open for the life of
    // the process (never dlclose'd), as the backend's registrations must stay valid.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() { "unknown error".to_string() } else { std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned() }
        };
        return CudaBackend::Failed(why);
    }
    CudaBackend::Loaded(path)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn open_cuda_backend() -> CudaBackend {
    CudaBackend::Failed("loading the CUDA backend at run time is implemented for Linux (glibc) only".into())
}

/// Display name of a device (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
