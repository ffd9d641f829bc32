//! Link flags for the `minik8s` binary.

fn main() {
    // RELR (glibc >= 2.36, binutils >= 2.38, both in Debian 12) packs the binary's ~58,000
    // relative relocations into a few KiB: every process of it (eleven in a 3-node cluster,
    // and each container's shim until it execs the monitor) no longer maps 1.4 MB of
    // relocation entries. glibc's loader is what reads them, hence only on linux-gnu.
    let target = |var: &str| std::env::var(var).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
