//! Unified cgroup v2 (Documentation/admin-guide/cgroup-v2.rst): one directory, controllers
//! enabled top-down through each parent's cgroup.subtree_control.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};

use super::conversions::{
    blkio_to_io_weight, cpu_max, limit_v2, pids_max, shares_to_weight, swap_to_v2,
};
use super::device_filter;
use super::files::{self, write};
use super::stats::{limit_or_none, CpuStats, MemoryStats, PidsStats, Stats};
use super::CgroupError;

/// Controllers a container cgroup gets when its parents offer them.
const WANTED: &[&str] = &[
    "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
];

/// mkdir every level of `rel` under `root`, first enabling in each parent's subtree_control the
/// wanted controllers it has. Records in `created` (outermost first) the directories it made.
pub(crate) fn create(
    root: &Path,
    rel: &str,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let mut current = root.to_path_buf();
    for part in rel.split('/') {
        enable_controllers(&current)?;
        current.push(part);
        if files::make_dir(&current)? {
            created.push(current.clone());
        }
    }
    Ok(())
}

/// Enable each wanted controller one by one: a single combined write fails as a whole if any one
/// is refused (e.g. cpu while a realtime task sits in the root), and the rest are still useful.
/// A limit that then needs a missing controller fails on its file with the path named.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = files::read(&dir.join("cgroup.controllers"))?;
    let subtree_path = dir.join("cgroup.subtree_control");
    let enabled = files::read(&subtree_path)?;
    for c in available.split_whitespace() {
        if !WANTED.contains(&c) || enabled.split_whitespace().any(|e| e == c) {
            continue;
        }
        if let Err(e) = write(&subtree_path, &format!("+{c}")) {
            tracing::debug!(error = %e, "controller not enabled");
        }
    }
    Ok(())
}

/// Apply OCI resources to a v2 cgroup directory.
pub(crate) fn apply(d: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(cpu) = r.cpu() {
        apply_cpu(d, cpu)?;
    }
    if let Some(mem) = r.memory() {
        apply_memory(d, mem)?;
    }
    if let Some(pids) = r.pids() {
        write(&d.join("pids.max"), &pids_max(pids.limit()))?;
    }
    if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
        write(
            &d.join("io.weight"),
            &blkio_to_io_weight(weight).to_string(),
        )?;
    }
    for hp in r.hugepage_limits().iter().flatten() {
        let file = format!("hugetlb.{}.max", hp.page_size());
        write(&d.join(file), &limit_v2(hp.limit()))?;
    }
    if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
        device_filter::apply(d, rules)?;
    }
    for (key, value) in r.unified().iter().flatten() {
        if key.contains('/') || key.starts_with('.') {
            return Err(CgroupError::InvalidResources {
                path: d.to_path_buf(),
                reason: format!("unified key {key:?} is not a control file name"),
            });
        }
        write(&d.join(key), value)?;
    }
    Ok(())
}

fn apply_cpu(d: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        write(&d.join("cpu.weight"), &shares_to_weight(shares).to_string())?;
    }
    if let Some(line) = cpu_max(cpu.quota(), cpu.period()) {
        write(&d.join("cpu.max"), &line)?;
    }
    if let Some(burst) = cpu.burst() {
        write(&d.join("cpu.max.burst"), &burst.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        write(&d.join("cpu.idle"), &idle.to_string())?;
    }
    if cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0)
    {
        return Err(CgroupError::Unsupported {
            path: d.to_path_buf(),
            what: "realtime cpu limits".into(),
            reason: "cgroup v2 has no cpu.rt_* files".into(),
        });
    }
    for (value, file) in [(cpu.cpus(), "cpuset.cpus"), (cpu.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            write(&d.join(file), v)?;
        }
    }
    Ok(())
}

fn apply_memory(d: &Path, mem: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = mem.limit().filter(|l| *l != 0);
    let swap = swap_to_v2(mem.swap(), limit).map_err(|reason| CgroupError::InvalidResources {
        path: d.to_path_buf(),
        reason,
    })?;
    if let Some(swap) = swap {
        let path = d.join("memory.swap.max");
        if !path.exists() {
            return Err(CgroupError::Unsupported {
                path,
                what: "a swap limit".into(),
                reason: "the kernel has no swap accounting".into(),
            });
        }
        write(&path, &swap)?;
    }
    if let Some(l) = limit {
        write(&d.join("memory.max"), &limit_v2(l))?;
    }
    if let Some(r) = mem.reservation().filter(|r| *r != 0) {
        write(&d.join("memory.low"), &limit_v2(r))?;
    }
    if mem.swappiness().is_some() || mem.disable_oom_killer().is_some() {
        // No v2 equivalent (cgroup-v2.rst has neither); runc ignores them the same way.
        tracing::debug!(path = %d.display(), "ignoring swappiness / disableOOMKiller on cgroup v2");
    }
    Ok(())
}

/// Read usage from the v2 files; a section is `None` when its controller is not enabled here.
pub(crate) fn stats(d: &Path) -> Result<Stats, CgroupError> {
    let cpu_path = d.join("cpu.stat");
    let cpu = match files::read_optional(&cpu_path)? {
        Some(text) => {
            let us = |k| files::keyed(&cpu_path, &text, k).map(|v| v.unwrap_or(0) * 1000);
            Some(CpuStats {
                usage_total_ns: us("usage_usec")?,
                usage_user_ns: us("user_usec")?,
                usage_system_ns: us("system_usec")?,
                nr_periods: files::keyed(&cpu_path, &text, "nr_periods")?.unwrap_or(0),
                nr_throttled: files::keyed(&cpu_path, &text, "nr_throttled")?.unwrap_or(0),
                throttled_ns: us("throttled_usec")?,
            })
        }
        None => None,
    };
    let memory = match files::read_optional(&d.join("memory.current"))? {
        Some(text) => Some(memory_stats(
            d,
            files::parse_u64(&d.join("memory.current"), &text)?,
        )?),
        None => None,
    };
    let pids = match files::read_optional(&d.join("pids.current"))? {
        Some(text) => Some(PidsStats {
            current: files::parse_u64(&d.join("pids.current"), &text)?,
            limit: limit_or_none(files::read_u64(&d.join("pids.max"))?),
        }),
        None => None,
    };
    Ok(Stats { cpu, memory, pids })
}

fn memory_stats(d: &Path, usage: u64) -> Result<MemoryStats, CgroupError> {
    let stat_path = d.join("memory.stat");
    let stat = files::read(&stat_path)?;
    let key = |k| files::keyed(&stat_path, &stat, k).map(|v| v.unwrap_or(0));
    let inactive = key("inactive_file")?;
    let swap = match files::read_optional(&d.join("memory.swap.current"))? {
        Some(t) => Some(files::parse_u64(&d.join("memory.swap.current"), &t)?),
        None => None,
    };
    let events_path = d.join("memory.events");
    let events = files::read(&events_path)?;
    let peak = match files::read_optional(&d.join("memory.peak"))? {
        Some(t) => Some(files::parse_u64(&d.join("memory.peak"), &t)?),
        None => None,
    };
    Ok(MemoryStats {
        usage_bytes: usage,
        rss_bytes: key("anon")?,
        page_faults: key("pgfault")?,
        major_page_faults: key("pgmajfault")?,
        swap_bytes: swap,
        max_usage_bytes: peak,
        limit_bytes: limit_or_none(files::read_u64(&d.join("memory.max"))?),
        working_set_bytes: usage.saturating_sub(inactive),
        oom_events: Some(files::keyed(&events_path, &events, "oom")?.unwrap_or(0)),
        oom_kill: files::keyed(&events_path, &events, "oom_kill")?.unwrap_or(0),
    })
}

/// `oom_kill` from memory.events.
pub(crate) fn oom_kill_count(d: &Path) -> Result<u64, CgroupError> {
    let path = d.join("memory.events");
    let text = files::read(&path)?;
    Ok(files::keyed(&path, &text, "oom_kill")?.unwrap_or(0))
}

/// Write cgroup.freeze and wait for cgroup.events to report `frozen 1` / `frozen 0`.
pub(crate) fn set_frozen(d: &Path, frozen: bool) -> Result<(), CgroupError> {
    let want = if frozen { "1" } else { "0" };
    write(&d.join("cgroup.freeze"), want)?;
    let events = d.join("cgroup.events");
    let deadline = std::time::Instant::now() + super::FREEZE_TIMEOUT;
    loop {
        let text = files::read(&events)?;
        if files::keyed(&events, &text, "frozen")?
            .map(|v| v.to_string())
            .as_deref()
            == Some(want)
        {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(CgroupError::Timeout {
                path: events,
                state: if frozen { "frozen" } else { "thawed" }.into(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
