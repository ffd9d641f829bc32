//! Builds `minik8s-monitor` (runtime/monitor), the long-lived half of every container's shim,
//! and embeds it in the runtime crate (`shim::monitor`), which installs it beside its state.
//!
//! It is compiled here with rustc directly rather than as a workspace binary because it must be
//! linked statically (`crt-static`, which Cargo cannot set for one binary) and without
//! unwinding: a static binary of a few hundred KiB keeps no dynamic loader or shared libc text
//! resident in each of the thousands of monitors a node may run.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=monitor");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let binary = out.join("minik8s-monitor");
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "--crate-name=minik8s_monitor",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "codegen-units=1",
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["-D", "warnings"])
        .arg("monitor/main.rs")
        .arg("-o")
        .arg(&binary)
        .status()
        .expect("run rustc for minik8s-monitor");
    assert!(status.success(), "building minik8s-monitor failed");
    let bytes = std::fs::read(&binary).expect("read minik8s-monitor");
    // FNV-1a names the installed copy, so monitors of different builds never overwrite each
    // other (a running one keeps its file).
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    println!("cargo:rustc-env=MINIK8S_MONITOR_HASH={hash:016x}");
}
