//! Where a session runs.

use std::fmt;
use std::str::FromStr;

/// A device an engine session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The host CPU.
    #[default]
    Cpu,
    /// A GPU, by its ordinal (CUDA's device id).
    Gpu(u32),
}

impl Device {
    /// Whether this is a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Gpu(_))
    }
}

/// `cpu` or `gpu:N`, the spelling describe output and logs use.
impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Gpu(id) => write!(f, "gpu:{id}"),
        }
    }
}

/// What happens when a GPU is asked for but cannot be used (no GPU, a CPU-only engine build,
/// missing CUDA libraries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuFallback {
    /// Run on the CPU and log a warning saying why: the model still serves, more slowly.
    #[default]
    Cpu,
    /// Refuse to load the model (or start the worker) with the reason: for deployments where CPU
    /// speed would be an outage anyway.
    Error,
}

impl FromStr for GpuFallback {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "error" => Ok(Self::Error),
            other => Err(format!("gpu_fallback must be `cpu` or `error`, got `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_print_as_describe_shows_them() {
        assert_eq!(Device::Cpu.to_string(), "cpu");
        assert_eq!(Device::Gpu(3).to_string(), "gpu:3");
        assert!(Device::Gpu(0).is_gpu() && !Device::Cpu.is_gpu());
    }

    #[test]
    fn fallback_parses_both_spellings_and_refuses_others() {
        assert_eq!("cpu".parse(), Ok(GpuFallback::Cpu));
        assert_eq!(" Error ".parse(), Ok(GpuFallback::Error));
        assert!("gpu".parse::<GpuFallback>().unwrap_err().contains("cpu` or `error"));
    }
}
