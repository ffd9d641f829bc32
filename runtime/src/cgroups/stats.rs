//! Resource usage of a cgroup, in the units the CRI and `kubectl top` want (ns, bytes, counts).

/// A snapshot of a cgroup's usage. A section is `None` when its controller is not available to
/// this cgroup (e.g. no memory controller on a controller-less cgroup2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub pids: Option<PidsStats>,
}

/// CPU time consumed by the cgroup and its descendants, and CFS throttling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_total_ns: u64,
    pub usage_user_ns: u64,
    pub usage_system_ns: u64,
    /// Enforcement periods elapsed while a quota was set.
    pub nr_periods: u64,
    /// Periods in which the cgroup hit its quota.
    pub nr_throttled: u64,
    pub throttled_ns: u64,
}

/// Memory use and OOM history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Current usage (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage_bytes: u64,
    /// Peak usage (v1 memory.max_usage_in_bytes, v2 memory.peak); `None` when the kernel lacks it.
    pub max_usage_bytes: Option<u64>,
    /// The limit; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// Usage minus inactive file cache: what the kubelet calls the working set and evicts on.
    pub working_set_bytes: u64,
    /// Anonymous memory (v1 memory.stat `total_rss`, v2 `anon`): the CRI's rss_bytes.
    pub rss_bytes: u64,
    /// Page faults and major page faults (memory.stat `pgfault` / `pgmajfault`).
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// Swap in use; `None` without swap accounting.
    pub swap_bytes: Option<u64>,
    /// Times the cgroup hit its limit and entered OOM (v2 memory.events `oom`). v1 has no such
    /// counter (only an eventfd notification), so it is `None` there.
    pub oom_events: Option<u64>,
    /// Processes killed by the OOM killer in this cgroup (v1 oom_control / v2 memory.events
    /// `oom_kill`).
    pub oom_kill: u64,
}

/// Number of tasks and the pids limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// v1 writes "unlimited" as the largest page-aligned i64 (9223372036854771712); v2 as `max`,
/// which the parser turns into `u64::MAX`. Anything this large means no limit.
pub(crate) fn limit_or_none(v: u64) -> Option<u64> {
    if v >= 1 << 62 {
        None
    } else {
        Some(v)
    }
}
