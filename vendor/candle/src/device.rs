//! The device choice the command line and the app pass around.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};

/// Where tensors go: `auto`, `cpu`, `metal[:N]` or `cuda[:N]`.
///
/// `auto` takes Metal when this crate was built with the `metal` feature
/// and a Metal device opens, else CUDA likewise, else the CPU.
///
/// ```
/// use tektra_candle::DeviceChoice;
/// assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
/// assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
/// assert!("tpu".parse::<DeviceChoice>().is_err());
/// assert!(DeviceChoice::Cpu.device().unwrap().is_cpu());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceChoice {
    /// The best device compiled in and present.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// A Metal GPU, by ordinal.
    Metal(usize),
    /// A CUDA GPU, by ordinal.
    Cuda(usize),
}

impl DeviceChoice {
    /// Opens the device.
    ///
    /// # Errors
    /// [`Error::Device`] when an explicit GPU choice cannot be opened (not
    /// compiled in, no such device, driver error). `auto` never fails.
    pub fn device(self) -> Result<Device> {
        let wrap = |source| Error::Device {
            choice: self.to_string(),
            source: Box::new(source),
        };
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Metal(n) => Device::new_metal(n).map_err(wrap),
            DeviceChoice::Cuda(n) => Device::new_cuda(n).map_err(wrap),
            DeviceChoice::Auto => Ok(auto()),
        }
    }
}

fn auto() -> Device {
    #[cfg(feature = "metal")]
    if let Ok(device) = Device::new_metal(0) {
        return device;
    }
    #[cfg(feature = "cuda")]
    if candle_core::utils::cuda_is_available()
        && let Ok(device) = Device::new_cuda(0)
    {
        return device;
    }
    Device::Cpu
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || Error::BadDeviceName { name: s.to_owned() };
        let (kind, ordinal) = match lower.split_once(':') {
            Some((kind, n)) => (kind, Some(n.parse::<usize>().map_err(|_| bad())?)),
            None => (lower.as_str(), None),
        };
        match (kind, ordinal) {
            ("auto", None) => Ok(DeviceChoice::Auto),
            ("cpu", None) => Ok(DeviceChoice::Cpu),
            ("metal", n) => Ok(DeviceChoice::Metal(n.unwrap_or(0))),
            ("cuda", n) => Ok(DeviceChoice::Cuda(n.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Metal(n) => write!(f, "metal:{n}"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}
