//! The machine a measurement ran on, and the load generator's own CPU use.
//!
//! Results are only comparable on the same hardware, so every result names its machine; and a load
//! generator that saturates its cores measures itself, so it counts its own CPU time.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Hardware and OS of the machine running the load generator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// OS name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// CPU model.
    pub cpu: String,
    /// Logical cores.
    pub logical_cores: usize,
    /// Physical cores, when known.
    pub physical_cores: Option<usize>,
    /// Total memory in GiB.
    pub memory_gib: f64,
}

impl Machine {
    /// Describes this machine; fields the OS does not expose stay empty.
    pub fn current() -> Self {
        let mut sys = System::new().ok();
        if let Some(s) = sys.as_mut() {
            s.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            s.refresh_memory();
        }
        let cpu = sys
            .as_ref()
            .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_owned()))
            .unwrap_or_default();
        Self {
            hostname: System::host_name().unwrap_or_default(),
            os: System::long_os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            arch: System::cpu_arch(),
            cpu,
            logical_cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            physical_cores: System::physical_core_count().ok(),
            memory_gib: sys.map(|s| s.total_memory() as f64 / (1u64 << 30) as f64).unwrap_or(0.0),
        }
    }

    /// One line for reports: `8 cores (4 physical) Intel Xeon …, 31.3 GiB, Debian 13, x86_64`.
    pub fn summary(&self) -> String {
        let physical = self.physical_cores.map(|p| format!(" ({p} physical)")).unwrap_or_default();
        format!(
            "{} logical cores{physical}, {}, {:.1} GiB, {} (kernel {}), {}, host {}",
            self.logical_cores,
            if self.cpu.is_empty() { "unknown CPU" } else { &self.cpu },
            self.memory_gib,
            self.os,
            self.kernel,
            self.arch,
            self.hostname
        )
    }
}

/// CPU time this process has used so far (user + system), when the OS tells.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let pid: Pid = sysinfo::get_current_pid().ok()?;
    let mut sys = System::new().ok()?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu(),
    );
    sys.process(pid).map(|p| Duration::from_millis(p.accumulated_cpu_time()))
}

/// Samples the whole machine's CPU and memory use while a measurement runs.
#[derive(Debug)]
pub(crate) struct HostSampler {
    sys: Option<System>,
    cpu: Vec<f64>,
    memory: Vec<f64>,
}

impl HostSampler {
    pub(crate) fn new() -> Self {
        let mut sys = System::new().ok();
        if let Some(s) = sys.as_mut() {
            // The first CPU reading is a baseline; usage is the difference to the next refresh.
            s.refresh_cpu_usage();
        }
        Self { sys, cpu: Vec::new(), memory: Vec::new() }
    }

    /// Takes one sample; call at least `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` apart.
    pub(crate) fn sample(&mut self) {
        if let Some(s) = self.sys.as_mut() {
            s.refresh_cpu_usage();
            s.refresh_memory();
            self.cpu.push(f64::from(s.global_cpu_usage()));
            if s.total_memory() > 0 {
                self.memory.push(s.used_memory() as f64 * 100.0 / s.total_memory() as f64);
            }
        }
    }

    /// Mean machine CPU and memory use in percent; `None` without samples.
    pub(crate) fn means(&self) -> (Option<f64>, Option<f64>) {
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        (mean(&self.cpu), mean(&self.memory))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_described() {
        let m = Machine::current();
        assert!(m.logical_cores >= 1);
        assert!(!m.arch.is_empty());
        assert!(m.summary().contains("logical cores"));
        assert!(process_cpu_time().is_some());
    }
}
