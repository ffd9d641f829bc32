//! Pure conversions from OCI (cgroup v1 flavoured) values to cgroup v2 files, following runc's
//! `libcontainer/cgroups` conversion helpers so a pod gets the same limits under either runtime.

/// cpu.shares [2, 262144] → cpu.weight [1, 10000], the linear mapping runc and crun (before 1.23)
/// use: `1 + ((shares - 2) * 9999) / 262142`. 0 means "not set".
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight [10, 1000] → io.weight [1, 10000] (runc's ConvertBlkIOToIOWeightValue). 0 = unset.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// The `cpu.max` line for a quota/period pair, or `None` when neither is set. A quota ≤ 0 is
/// "max" (unlimited); a missing period keeps the kernel's current one (runc writes only "max").
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.unwrap_or(0);
    let period = period.unwrap_or(0);
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 {
        quota.to_string()
    } else {
        "max".to_string()
    };
    if period != 0 {
        s.push_str(&format!(" {period}"));
    }
    Some(s)
}

/// OCI `memory.swap` is memory+swap (the v1 memsw meaning); v2's memory.swap.max is swap alone.
/// Returns the memory.swap.max value, `None` when swap is unset. Mirrors runc's
/// ConvertMemorySwapToCgroupV2Value, including its refusals.
pub fn swap_to_v2(swap: Option<i64>, memory: Option<i64>) -> Result<Option<String>, String> {
    let swap = swap.unwrap_or(0);
    let memory = memory.unwrap_or(0);
    match (swap, memory) {
        (-1, _) => Ok(Some("max".into())),
        (0, _) => Ok(None),
        (_, 0) => Err("a swap limit needs a memory limit".into()),
        (_, m) if m < 0 => Err("a swap limit needs a finite memory limit".into()),
        (s, m) if s < m => Err(format!(
            "memory+swap limit {s} is below the memory limit {m}"
        )),
        (s, m) => Ok(Some((s - m).to_string())),
    }
}

/// A byte limit for v1 files (-1 stays -1, the kernel's "unlimited") or v2 files (-1 → "max").
pub fn limit_v2(value: i64) -> String {
    if value < 0 {
        "max".into()
    } else {
        value.to_string()
    }
}

/// pids.max: OCI says a limit ≤ 0 is "no limit" (runtime-spec config-linux.md, pids).
pub fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_like_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
    }

    #[test]
    fn blkio_weight_maps_like_runc() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).unwrap(),
            "50000 100000"
        );
        assert_eq!(cpu_max(Some(-1), Some(100_000)).unwrap(), "max 100000");
        assert_eq!(cpu_max(Some(20_000), None).unwrap(), "20000");
    }

    #[test]
    fn swap_conversion_and_refusals() {
        assert_eq!(swap_to_v2(None, Some(100)).unwrap(), None);
        assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap().unwrap(), "max");
        assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap().unwrap(), "200");
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }

    #[test]
    fn pids_and_limits() {
        assert_eq!(pids_max(0), "max");
        assert_eq!(pids_max(-1), "max");
        assert_eq!(pids_max(10), "10");
        assert_eq!(limit_v2(-1), "max");
        assert_eq!(limit_v2(4096), "4096");
    }
}
