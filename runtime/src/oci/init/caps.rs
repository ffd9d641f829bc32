//! Capabilities from config.json (capabilities(7)): the bounding set is dropped while the init
//! is still fully privileged, then effective/permitted/inheritable are set with capset(2) and
//! ambient capabilities raised with prctl(2), as runc does.

use oci_spec::runtime::{Capabilities, Capability, Process};

use super::InitError;

/// The kernel's number for a capability (linux/capability.h).
pub fn number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// A capability set as the kernel's 64-bit mask.
pub fn mask(set: Option<&Capabilities>) -> u64 {
    set.map(|s| s.iter().fold(0u64, |m, c| m | 1 << number(*c)))
        .unwrap_or(0)
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in the bounding set (needs CAP_SETPCAP, so done first).
pub fn drop_bounding(process: &Process) -> Result<(), InitError> {
    let Some(caps) = process.capabilities() else {
        return Ok(());
    };
    let keep = mask(caps.bounding().as_ref());
    for cap in 0..=last_cap() {
        if keep & (1 << cap) == 0 {
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 && nix::errno::Errno::last() != nix::errno::Errno::EINVAL {
                return Err(InitError::sys(
                    format!("prctl capbset_drop {cap}"),
                    nix::errno::Errno::last(),
                ));
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets effective, permitted and inheritable, then raises the ambient set.
pub fn apply(process: &Process) -> Result<(), InitError> {
    let Some(caps) = process.capabilities() else {
        return Ok(());
    };
    let eff = mask(caps.effective().as_ref());
    let perm = mask(caps.permitted().as_ref());
    let inh = mask(caps.inheritable().as_ref());
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: eff as u32,
            permitted: perm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (perm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    nix::errno::Errno::result(r).map_err(|e| InitError::sys("capset", e))?;
    // capabilities(7): the ambient set must stay a subset of permitted ∩ inheritable; the
    // kernel refuses others, so (like runc) those are left out rather than failing.
    for cap in caps.ambient().as_ref().into_iter().flatten() {
        if (perm & inh) & (1 << number(*cap)) == 0 {
            continue;
        }
        let n = number(*cap) as libc::c_ulong;
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                n,
                0,
                0,
            )
        };
        nix::errno::Errno::result(r)
            .map_err(|e| InitError::sys(format!("prctl ambient raise {cap}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_the_kernel_numbers() {
        let set: Capabilities = [
            Capability::Chown,
            Capability::NetBindService,
            Capability::SysAdmin,
        ]
        .into_iter()
        .collect();
        assert_eq!(mask(Some(&set)), 1 | 1 << 10 | 1 << 21);
        assert_eq!(mask(None), 0);
    }
}
