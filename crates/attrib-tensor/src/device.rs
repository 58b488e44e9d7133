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
    /// The concrete device, or an error when it is not present on this machine.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => Ok(Device::cuda_if_available()),
            DeviceSpec::Cuda(n) => {
                if !tch::Cuda::is_available() {
                    return Err(AttribError::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: "libtorch sees no CUDA device on this machine; use `cpu` or `auto`".into(),
                    });
                }
                let count = tch::Cuda::device_count() as usize;
                if n >= count {
                    return Err(AttribError::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: format!("this machine has {count} CUDA device(s), numbered from 0"),
                    });
                }
                Ok(Device::Cuda(n))
            }
        }
    }
}

/// Display name of a device (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
