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
