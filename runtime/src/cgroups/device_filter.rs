//! Device access rules on cgroup v2: v2 has no devices.allow/deny files; the kernel instead runs a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup on every device open or mknod
//! (Documentation/admin-guide/cgroup-v2.rst, "Device controller"). We compile the OCI rules into
//! such a program the way runc's devicefilter does: later rules take precedence, so they are
//! tested first and the first match decides; with no match, access is allowed as it would be on
//! v1 (OCI configs start with "deny all", which then catches everything unmatched).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

// bpf(2) commands, program and attach types, from include/uapi/linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
// bpf_cgroup_dev_ctx.access_type: device type in the low 16 bits, access in the high 16.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// The few opcodes the filter needs (BPF_CLASS | BPF_OP | BPF_SRC).
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0) // BPF_LDX | BPF_MEM | BPF_W
}
fn and_k(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm) // BPF_ALU | BPF_AND | BPF_K
}
fn rsh_k(dst: u8, imm: i32) -> Insn {
    insn(0x74, dst, 0, 0, imm) // BPF_ALU | BPF_RSH | BPF_K
}
fn mov_k(dst: u8, imm: i32) -> Insn {
    insn(0xb4, dst, 0, 0, imm) // BPF_ALU | BPF_MOV | BPF_K
}
fn mov_x(dst: u8, src: u8) -> Insn {
    insn(0xbc, dst, src, 0, 0) // BPF_ALU | BPF_MOV | BPF_X
}
fn jne_k(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm) // BPF_JMP | BPF_JNE | BPF_K
}
fn jne_x(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0) // BPF_JMP | BPF_JNE | BPF_X
}
fn jeq_k(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x15, dst, 0, off, imm) // BPF_JMP | BPF_JEQ | BPF_K
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| match c {
        'r' => acc | ACC_READ,
        'w' => acc | ACC_WRITE,
        'm' => acc | ACC_MKNOD,
        _ => acc,
    })
}

/// Compile the rules. Registers: r2 = device type, r3 = requested access, r4 = major,
/// r5 = minor (loaded from struct bpf_cgroup_dev_ctx in r1); r0 = 1 allows, 0 denies.
pub(crate) fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut prog = vec![
        ldx_w(2, 1, 0),
        and_k(2, 0xffff),
        ldx_w(3, 1, 0),
        rsh_k(3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    for rule in rules.iter().rev() {
        let typ = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            // FIFOs are not devices the cgroup controls (runc skips them too).
            LinuxDeviceType::P => continue,
        };
        let access = match rule.access().as_deref() {
            Some(a) if !a.is_empty() => access_bits(a),
            _ => ACC_ALL,
        };
        // Each test jumps to the end of this block on mismatch; offsets are counted after the
        // whole block is known, as jump offsets are relative to the next instruction.
        let mut block: Vec<Box<dyn Fn(i16) -> Insn>> = Vec::new();
        if let Some(t) = typ {
            block.push(Box::new(move |skip| jne_k(2, t, skip)));
        }
        if access != ACC_ALL {
            if rule.allow() {
                // Allow only when every requested bit is allowed: (req & allowed) == req.
                block.push(Box::new(|_| mov_x(1, 3)));
                block.push(Box::new(move |_| and_k(1, access)));
                block.push(Box::new(|skip| jne_x(1, 3, skip)));
            } else {
                // Deny when any requested bit is denied: (req & denied) != 0.
                block.push(Box::new(|_| mov_x(1, 3)));
                block.push(Box::new(move |_| and_k(1, access)));
                block.push(Box::new(|skip| jeq_k(1, 0, skip)));
            }
        }
        if let Some(major) = rule.major().filter(|m| *m >= 0) {
            block.push(Box::new(move |skip| jne_k(4, major as i32, skip)));
        }
        if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
            block.push(Box::new(move |skip| jne_k(5, minor as i32, skip)));
        }
        let verdict = i32::from(rule.allow());
        let len = block.len();
        for (i, make) in block.iter().enumerate() {
            // Instructions left in the block after this one, plus the mov and exit.
            prog.push(make((len - i - 1 + 2) as i16));
        }
        prog.push(mov_k(0, verdict));
        prog.push(exit());
        if len == 0 {
            // Matches everything: earlier rules and the default are unreachable, and the
            // verifier rejects unreachable instructions.
            return prog;
        }
    }
    prog.push(mov_k(0, 1));
    prog.push(exit());
    prog
}

/// Load the compiled rules and attach them to the cgroup directory `dir`, replacing a program
/// attached earlier by us (single-program attach mode replaces on re-attach).
pub(crate) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = compile(rules);
    let err = |step: &str, source: std::io::Error| CgroupError::DeviceFilter {
        path: dir.to_path_buf(),
        step: step.to_string(),
        source,
    };
    let prog_fd = load(&prog).map_err(|e| err("loading", e))?;
    let cgroup = std::fs::File::open(dir).map_err(|e| err("opening the cgroup for", e))?;
    attach(&cgroup, &prog_fd).map_err(|e| err("attaching", e))
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: attr is a live, fully initialised #[repr(C)] prefix of union bpf_attr whose size
    // we pass; the kernel reads (and for some commands writes) only that many bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(prog: &[Insn]) -> std::io::Result<OwnedFd> {
    let license = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"minik8s_devcg");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    let fd = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Load again with the verifier's log so the error says what it refused.
            let mut log = vec![0u8; 16 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let again = bpf(BPF_PROG_LOAD, &mut attr);
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            match again {
                Ok(fd) => fd,
                Err(_) => return Err(std::io::Error::new(e.kind(), format!("{e}: {text}"))),
            }
        }
        Err(e) => return Err(e),
    };
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn attach(cgroup: &std::fs::File, prog: &OwnedFd) -> std::io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..ProgAttachAttr::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    /// Run the compiled program on one access, interpreting the few opcodes it uses.
    fn run(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i32 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i.off as i64) as usize;
                }
            };
            match i.code {
                0x61 => r[d] = ctx[(i.off / 4) as usize] as i64,
                0x54 => r[d] = (r[d] as u32 & i.imm as u32) as i64,
                0x74 => r[d] = ((r[d] as u32) >> i.imm) as i64,
                0xb4 => r[d] = i.imm as u32 as i64,
                0xbc => r[d] = r[s] as u32 as i64,
                0x55 => jump(r[d] != i.imm as i64, &mut pc),
                0x5d => jump(r[d] != r[s], &mut pc),
                0x15 => jump(r[d] == i.imm as i64, &mut pc),
                0x95 => return r[0] as i32,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn later_rules_win_and_deny_all_catches_the_rest() {
        let p = compile(&rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        ));
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1, "read /dev/null");
        assert_eq!(
            run(&p, DEV_CHAR, rw, 1, 3),
            0,
            "write to /dev/null was denied last"
        );
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1, "any pty");
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 136, 7), 0, "no mknod of a pty");
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ, 1, 5),
            0,
            "/dev/zero falls to deny all"
        );
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 1, 3), 0, "a block device 1:3");
    }

    #[test]
    fn a_catch_all_rule_ends_the_program() {
        let p = compile(&rules(
            r#"[{"allow": true, "access": "rwm"}, {"allow": false, "access": "rwm"}]"#,
        ));
        // Only the last rule is reachable: prologue (6), its mov and exit.
        assert_eq!(p.len(), 8);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn no_rules_allow_everything() {
        let p = compile(&[]);
        assert_eq!(run(&p, DEV_BLOCK, ACC_ALL, 8, 0), 1);
    }
}
