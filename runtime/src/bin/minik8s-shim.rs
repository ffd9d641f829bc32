//! `minik8s-shim shim ARGS`: the per-container shim alone, without the rest of minik8s.
//!
//! The shim is the same code as `minik8s shim` (runtime/src/shim), in a binary that links only
//! what the shim uses. Its peak RSS is what the dynamic loader and the first run touch, and a
//! big position-independent binary makes the loader write every relocated pointer (vtables,
//! string tables) of everything linked in: ~1 MiB more per container for the full `minik8s`.
//! `oci::Runtime` uses this binary when it sits next to the running executable.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args.first() {
        Some(mode) if mode == "shim" => minik8s_runtime::shim::main(&args[1..]),
        _ => {
            eprintln!("minik8s-shim: internal command, started by the runtime");
            std::process::exit(2);
        }
    }
}
