//! cgroup v1: one directory per hierarchy, limits written to per-controller files
//! (Documentation/admin-guide/cgroup-v1/*.rst), in the order runc uses so updates never pass
//! through a state the kernel rejects.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};

use super::conversions::pids_max;
use super::files::{self, write};
use super::layout::Hierarchy;
use super::stats::{limit_or_none, CpuStats, MemoryStats, PidsStats, Stats};
use super::CgroupError;

/// USER_HZ, the unit of cpuacct.stat; 100 on every Linux ABI we run on.
const USER_HZ: u64 = 100;

/// The cgroup's directory in the hierarchy carrying `controller`, if mounted.
pub(crate) fn dir<'a>(dirs: &'a [Hierarchy], controller: &str) -> Option<&'a Path> {
    dirs.iter()
        .find(|h| h.has(controller))
        .map(|h| h.dir.as_path())
}

/// Like [`dir`], but a missing controller is an error naming what needed it.
fn need<'a>(dirs: &'a [Hierarchy], controller: &str, what: &str) -> Result<&'a Path, CgroupError> {
    dir(dirs, controller).ok_or_else(|| CgroupError::Unsupported {
        path: dirs.first().map(|h| h.dir.clone()).unwrap_or_default(),
        what: what.to_string(),
        reason: format!("the {controller} controller is not mounted"),
    })
}

/// mkdir every level of `rel` under one hierarchy, recording in `created` (outermost first) the
/// directories this call made, also when it fails part way. A cpuset level starts with empty cpus/mems and refuses tasks (ENOSPC)
/// until they are set, so each level copies its parent's.
pub(crate) fn create(
    h: &Hierarchy,
    rel: &str,
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let mut current = h.dir.clone();
    for part in rel.split('/') {
        let parent = current.clone();
        current.push(part);
        if files::make_dir(&current)? {
            created.push(current.clone());
        }
        if h.has("cpuset") {
            copy_cpuset(&parent, &current)?;
        }
    }
    Ok(())
}

fn copy_cpuset(parent: &Path, child: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if files::read(&child.join(file))?.trim().is_empty() {
            let value = files::read(&parent.join(file))?;
            write(&child.join(file), value.trim())?;
        }
    }
    Ok(())
}

/// Apply OCI resources to the cgroup's directories.
pub(crate) fn apply(dirs: &[Hierarchy], r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(cpu) = r.cpu() {
        apply_cpu(dirs, cpu)?;
    }
    if let Some(mem) = r.memory() {
        apply_memory(dirs, mem)?;
    }
    if let Some(pids) = r.pids() {
        write(
            &need(dirs, "pids", "pids limit")?.join("pids.max"),
            &pids_max(pids.limit()),
        )?;
    }
    if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
        write(
            &need(dirs, "blkio", "blkio weight")?.join("blkio.weight"),
            &weight.to_string(),
        )?;
    }
    for hp in r.hugepage_limits().iter().flatten() {
        let d = need(dirs, "hugetlb", "hugepage limit")?;
        let file = format!("hugetlb.{}.limit_in_bytes", hp.page_size());
        write(&d.join(file), &hp.limit().to_string())?;
    }
    if let Some(devices) = r.devices() {
        apply_devices(dirs, devices)?;
    }
    if let Some(class) = r.network().as_ref().and_then(|n| n.class_id()) {
        write(
            &need(dirs, "net_cls", "network class id")?.join("net_cls.classid"),
            &class.to_string(),
        )?;
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Unsupported {
            path: dirs.first().map(|h| h.dir.clone()).unwrap_or_default(),
            what: "unified (cgroup v2) resources".into(),
            reason: "the host uses cgroup v1".into(),
        });
    }
    Ok(())
}

fn apply_cpu(dirs: &[Hierarchy], cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let has_cpu_fields = cpu.shares().is_some()
        || cpu.quota().is_some()
        || cpu.period().is_some()
        || cpu.burst().is_some()
        || cpu.idle().is_some()
        || cpu.realtime_period().is_some()
        || cpu.realtime_runtime().is_some();
    if has_cpu_fields {
        let d = need(dirs, "cpu", "cpu limits")?;
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            write(&d.join("cpu.shares"), &shares.to_string())?;
        }
        set_quota_period(
            d,
            cpu.quota().filter(|q| *q != 0),
            cpu.period().filter(|p| *p != 0),
        )?;
        if let Some(burst) = cpu.burst() {
            write(&d.join("cpu.cfs_burst_us"), &burst.to_string())?;
        }
        if let Some(idle) = cpu.idle() {
            write(&d.join("cpu.idle"), &idle.to_string())?;
        }
        // The rt period must be set before a runtime that only fits in it (sched-rt-group.rst).
        if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
            write(&d.join("cpu.rt_period_us"), &p.to_string())?;
        }
        if let Some(rt) = cpu.realtime_runtime().filter(|r| *r != 0) {
            write(&d.join("cpu.rt_runtime_us"), &rt.to_string())?;
        }
    }
    for (value, file) in [(cpu.cpus(), "cpuset.cpus"), (cpu.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            write(&need(dirs, "cpuset", file)?.join(file), v)?;
        }
    }
    Ok(())
}

/// Period first, then quota; if the period is refused because the current quota does not fit it,
/// set the quota first and retry (runc's fs/cpu.go does the same dance).
fn set_quota_period(d: &Path, quota: Option<i64>, period: Option<u64>) -> Result<(), CgroupError> {
    let (qf, pf) = (d.join("cpu.cfs_quota_us"), d.join("cpu.cfs_period_us"));
    match (quota, period) {
        (q, Some(p)) => {
            if let Err(first) = write(&pf, &p.to_string()) {
                let Some(q) = q else { return Err(first) };
                write(&qf, &q.to_string())?;
                write(&pf, &p.to_string())?;
                return Ok(());
            }
            if let Some(q) = q {
                write(&qf, &q.to_string())?;
            }
            Ok(())
        }
        (Some(q), None) => write(&qf, &q.to_string()),
        (None, None) => Ok(()),
    }
}

fn apply_memory(dirs: &[Hierarchy], mem: &LinuxMemory) -> Result<(), CgroupError> {
    let any = mem.limit().is_some()
        || mem.swap().is_some()
        || mem.reservation().is_some()
        || mem.swappiness().is_some()
        || mem.disable_oom_killer().is_some();
    if !any {
        return Ok(());
    }
    let d = need(dirs, "memory", "memory limits")?;
    set_memory_and_swap(
        d,
        mem.limit().filter(|l| *l != 0),
        mem.swap().filter(|s| *s != 0),
    )?;
    if let Some(r) = mem.reservation().filter(|r| *r != 0) {
        write(&d.join("memory.soft_limit_in_bytes"), &r.to_string())?;
    }
    if let Some(s) = mem.swappiness() {
        if s > 100 {
            return Err(CgroupError::InvalidResources {
                path: d.to_path_buf(),
                reason: format!("swappiness {s} is above 100"),
            });
        }
        write(&d.join("memory.swappiness"), &s.to_string())?;
    }
    if mem.disable_oom_killer() == Some(true) {
        write(&d.join("memory.oom_control"), "1")?;
    }
    if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
        // Kernel memory limits are deprecated (runtime-spec) and refused by kernels ≥ 5.16;
        // runc ignores them too.
        tracing::debug!(path = %d.display(), "ignoring kernel memory limit");
    }
    Ok(())
}

/// memory.limit_in_bytes and memory.memsw.limit_in_bytes must always satisfy memsw ≥ limit, so
/// the write order depends on whether the new values grow or shrink (runc fs/memory.go).
fn set_memory_and_swap(d: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<(), CgroupError> {
    let (lf, sf) = (
        d.join("memory.limit_in_bytes"),
        d.join("memory.memsw.limit_in_bytes"),
    );
    let memsw = sf.exists();
    // Lifting the memory limit without a swap value lifts swap too, or memsw would cap it.
    let swap = match (limit, swap) {
        (Some(-1), None) if memsw => Some(-1),
        _ => swap,
    };
    if swap.is_some() && !memsw {
        return Err(CgroupError::Unsupported {
            path: sf,
            what: "a memory+swap limit".into(),
            reason: "the kernel has no swap accounting (boot with swapaccount=1)".into(),
        });
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current = files::read_u64(&lf)?;
            if s == -1 || current < s as u64 {
                write(&sf, &s.to_string())?;
                write(&lf, &l.to_string())
            } else {
                write(&lf, &l.to_string())?;
                write(&sf, &s.to_string())
            }
        }
        (Some(l), None) => write(&lf, &l.to_string()),
        (None, Some(s)) => write(&sf, &s.to_string()),
        (None, None) => Ok(()),
    }
}

fn apply_devices(
    dirs: &[Hierarchy],
    rules: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    if rules.is_empty() {
        return Ok(());
    }
    let d = need(dirs, "devices", "device rules")?;
    for rule in rules {
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let mut line = rule.to_string();
        if rule.access().as_deref().unwrap_or("").is_empty() {
            line.push_str("rwm");
        }
        write(&d.join(file), &line)?;
    }
    Ok(())
}

/// Read usage from the v1 controller files.
pub(crate) fn stats(dirs: &[Hierarchy]) -> Result<Stats, CgroupError> {
    Ok(Stats {
        cpu: dir(dirs, "cpuacct")
            .map(|d| cpu_stats(d, dir(dirs, "cpu")))
            .transpose()?,
        memory: dir(dirs, "memory").map(memory_stats).transpose()?,
        pids: dir(dirs, "pids").map(pids_stats).transpose()?,
    })
}

fn cpu_stats(acct: &Path, cpu: Option<&Path>) -> Result<CpuStats, CgroupError> {
    let mut s = CpuStats {
        usage_total_ns: files::read_u64(&acct.join("cpuacct.usage"))?,
        ..CpuStats::default()
    };
    let user = files::read_optional(&acct.join("cpuacct.usage_user"))?;
    let sys = files::read_optional(&acct.join("cpuacct.usage_sys"))?;
    if let (Some(u), Some(y)) = (user, sys) {
        s.usage_user_ns = files::parse_u64(&acct.join("cpuacct.usage_user"), &u)?;
        s.usage_system_ns = files::parse_u64(&acct.join("cpuacct.usage_sys"), &y)?;
    } else {
        // Older kernels: only cpuacct.stat, in USER_HZ ticks.
        let path = acct.join("cpuacct.stat");
        let text = files::read(&path)?;
        let tick = 1_000_000_000 / USER_HZ;
        s.usage_user_ns = files::keyed(&path, &text, "user")?.unwrap_or(0) * tick;
        s.usage_system_ns = files::keyed(&path, &text, "system")?.unwrap_or(0) * tick;
    }
    if let Some(cpu) = cpu {
        let path = cpu.join("cpu.stat");
        if let Some(text) = files::read_optional(&path)? {
            s.nr_periods = files::keyed(&path, &text, "nr_periods")?.unwrap_or(0);
            s.nr_throttled = files::keyed(&path, &text, "nr_throttled")?.unwrap_or(0);
            s.throttled_ns = files::keyed(&path, &text, "throttled_time")?.unwrap_or(0);
        }
    }
    Ok(s)
}

fn memory_stats(d: &Path) -> Result<MemoryStats, CgroupError> {
    let usage = files::read_u64(&d.join("memory.usage_in_bytes"))?;
    let stat_path = d.join("memory.stat");
    let stat = files::read(&stat_path)?;
    let key = |k| files::keyed(&stat_path, &stat, k).map(|v| v.unwrap_or(0));
    let inactive = key("total_inactive_file")?;
    let memsw = match files::read_optional(&d.join("memory.memsw.usage_in_bytes"))? {
        Some(t) => Some(files::parse_u64(
            &d.join("memory.memsw.usage_in_bytes"),
            &t,
        )?),
        None => None,
    };
    Ok(MemoryStats {
        usage_bytes: usage,
        rss_bytes: key("total_rss")?,
        page_faults: key("total_pgfault")?,
        major_page_faults: key("total_pgmajfault")?,
        swap_bytes: memsw.map(|m| m.saturating_sub(usage)),
        max_usage_bytes: Some(files::read_u64(&d.join("memory.max_usage_in_bytes"))?),
        limit_bytes: limit_or_none(files::read_u64(&d.join("memory.limit_in_bytes"))?),
        working_set_bytes: usage.saturating_sub(inactive),
        oom_events: None,
        oom_kill: oom_kill_count(d)?,
    })
}

/// `oom_kill N` from memory.oom_control (Linux ≥ 4.13).
pub(crate) fn oom_kill_count(memory_dir: &Path) -> Result<u64, CgroupError> {
    let path = memory_dir.join("memory.oom_control");
    let text = files::read(&path)?;
    Ok(files::keyed(&path, &text, "oom_kill")?.unwrap_or(0))
}

fn pids_stats(d: &Path) -> Result<PidsStats, CgroupError> {
    Ok(PidsStats {
        current: files::read_u64(&d.join("pids.current"))?,
        limit: limit_or_none(files::read_u64(&d.join("pids.max"))?),
    })
}

/// Ask the freezer for `FROZEN` or `THAWED` and wait until freezer.state reports it. Freezing
/// passes through `FREEZING` while tasks are stopped; re-writing FROZEN retries stragglers
/// (cgroup-v1/freezer-subsystem.rst).
pub(crate) fn set_frozen(dirs: &[Hierarchy], frozen: bool) -> Result<(), CgroupError> {
    let d = need(dirs, "freezer", "freezing")?;
    let (state, path) = (
        if frozen { "FROZEN" } else { "THAWED" },
        d.join("freezer.state"),
    );
    let deadline = std::time::Instant::now() + super::FREEZE_TIMEOUT;
    loop {
        write(&path, state)?;
        if files::read(&path)?.trim() == state {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(CgroupError::Timeout {
                path,
                state: state.to_lowercase(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
