//! How many CPUs this process may use: the container's CFS quota (cgroup v2 `cpu.max`, or v1
//! `cpu.cfs_quota_us` / `cpu.cfs_period_us`), capped by the cores the scheduler gives us.
//!
//! A pod limited to 500m on a 64-core node must not start 64 inference threads: they would
//! spend the quota in a burst and then be throttled for the rest of each period.

use std::fs;
use std::path::Path;

/// CPUs allowed by the cgroup under `root` (normally `/sys/fs/cgroup`), rounded up, if a
/// quota is set.
pub fn cgroup_cpu_limit(root: &Path) -> Option<usize> {
    let v2 = fs::read_to_string(root.join("cpu.max"))
        .ok()
        .and_then(|s| parse_cpu_max(&s));
    v2.or_else(|| {
        let dir = root.join("cpu");
        let quota = fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?;
        let period = fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
        parse_cfs(&quota, &period)
    })
}

/// `cpu.max` holds `"<quota> <period>"` or `"max <period>"`.
fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period = parts.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    ratio(quota.parse().ok()?, period.parse().ok()?)
}

/// cgroup v1: a quota of -1 means unlimited.
fn parse_cfs(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    if quota <= 0 {
        return None;
    }
    ratio(quota as u64, period as u64)
}

fn ratio(quota: u64, period: u64) -> Option<usize> {
    if period == 0 {
        return None;
    }
    Some(quota.div_ceil(period).max(1) as usize)
}

/// Threads to use: the quota if there is one, never more than the cores available.
pub fn available_cpus() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match cgroup_cpu_limit(Path::new("/sys/fs/cgroup")) {
        Some(limit) => limit.min(cores),
        None => cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroup_v2() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(1));
        assert_eq!(parse_cpu_max("250000 100000\n"), Some(3));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn parses_cgroup_v1() {
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("200000\n", "100000\n"), Some(2));
        assert_eq!(parse_cfs("150000", "0"), None);
    }

    #[test]
    fn reads_files_under_a_root() {
        let dir = std::env::temp_dir().join(format!("inferd-cgroup-{}", std::process::id()));
        fs::create_dir_all(dir.join("cpu")).unwrap();
        fs::write(dir.join("cpu/cpu.cfs_quota_us"), "300000\n").unwrap();
        fs::write(dir.join("cpu/cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(cgroup_cpu_limit(&dir), Some(3), "v1 layout");
        fs::write(dir.join("cpu.max"), "100000 100000\n").unwrap();
        assert_eq!(cgroup_cpu_limit(&dir), Some(1), "v2 wins when present");
        fs::remove_dir_all(&dir).unwrap();
    }
}
