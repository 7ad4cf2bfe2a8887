//! Host metrics TorchServe reports: CPU, memory and disk utilisation.

use std::path::{Path, PathBuf};

use sysinfo::{Disks, System};

/// This machine's name, for the `hostname` labels.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Samples host usage; CPU utilisation is measured between two consecutive samples.
#[derive(Debug)]
pub struct SystemSampler {
    system: Option<System>,
    disks: Option<Disks>,
    /// The disk holding this path is the one reported (the model store).
    path: PathBuf,
}

const MB: f64 = 1024.0 * 1024.0;
const GB: f64 = MB * 1024.0;

impl SystemSampler {
    /// A sampler reporting the disk that holds `path`.
    pub fn new(path: &Path) -> Self {
        let mut system = System::new().ok();
        if let Some(s) = system.as_mut() {
            s.refresh_cpu_usage();
        }
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self { system, disks: Disks::new_with_refreshed_list().ok(), path }
    }

    /// `[CPUUtilization %, MemoryUsed MB, MemoryAvailable MB, MemoryUtilization %, DiskUsage GB,
    /// DiskAvailable GB, DiskUtilization %]`, zeros where the platform does not tell.
    pub fn sample(&mut self) -> [f64; 7] {
        let (mut cpu, mut used, mut available, mut mem_util) = (0.0, 0.0, 0.0, 0.0);
        if let Some(s) = self.system.as_mut() {
            s.refresh_cpu_usage();
            s.refresh_memory();
            cpu = f64::from(s.global_cpu_usage());
            #[allow(clippy::cast_precision_loss)]
            let (total, avail) = (s.total_memory() as f64, s.available_memory() as f64);
            used = (total - avail) / MB;
            available = avail / MB;
            mem_util = if total > 0.0 { 100.0 * (total - avail) / total } else { 0.0 };
        }
        let (mut disk_used, mut disk_avail, mut disk_util) = (0.0, 0.0, 0.0);
        if let Some(disks) = self.disks.as_mut() {
            disks.refresh(true);
            let disk = disks
                .iter()
                .filter(|d| self.path.starts_with(d.mount_point()))
                .max_by_key(|d| d.mount_point().as_os_str().len());
            if let Some(d) = disk {
                #[allow(clippy::cast_precision_loss)]
                let (total, avail) = (d.total_space() as f64, d.available_space() as f64);
                disk_used = (total - avail) / GB;
                disk_avail = avail / GB;
                disk_util = if total > 0.0 { 100.0 * (total - avail) / total } else { 0.0 };
            }
        }
        let round = |v: f64| (v * 100.0).round() / 100.0;
        [cpu, used, available, mem_util, disk_used, disk_avail, disk_util].map(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_plausible() {
        let mut s = SystemSampler::new(Path::new("."));
        let v = s.sample();
        assert!((0.0..=100.0).contains(&v[0]));
        assert!(v[1] > 0.0 && v[2] > 0.0, "{v:?}");
        assert!((0.0..=100.0).contains(&v[3]));
        assert!((0.0..=100.0).contains(&v[6]));
    }
}
