//! `cargo bench -p minik8s-runtime --bench oci`: create + start + wait + delete of `/bin/true`
//! from one busybox bundle, N times (env `OCI_BENCH_N`, default 200), for
//! - `minik8s-lib`: the library in this process (`Runtime::run`), the way the CRI server calls it;
//! - `minik8s-cli`: `minik8s oci run` as a fresh process, like the peers below;
//! - `runc run` and `crun run` on the same bundle (crun in its own mount namespace without
//!   /sys/fs/cgroup/unified, which it refuses on this hybrid host).
//!
//! Iterations are interleaved (one of each runtime per round, the first one rotating) so machine
//! noise and the kernel's asynchronous teardown of the previous container hit all alike.
//! This binary doubles as the `minik8s` binary (its `shim` and `oci` modes dispatch to the same
//! library code) unless `MINIK8S_BIN` names a built one. Prints a table and writes
//! `target/bench/oci.json`, with the shim's peak RSS (VmHWM).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minik8s_runtime::oci::busybox::BusyboxBundle;
use minik8s_runtime::oci::{CreateOptions, Runtime};

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("shim") => minik8s_runtime::shim::main(&args[2..]),
        Some("oci") => {
            use clap::Parser;
            let cli = minik8s_runtime::oci::cli::Args::parse_from(&args[1..]);
            std::process::exit(minik8s_runtime::oci::cli::main(cli));
        }
        _ => {}
    }
    if let Err(e) = bench() {
        eprintln!("oci bench: {e}");
        std::process::exit(1);
    }
}

struct Peer {
    name: &'static str,
    times: Vec<Duration>,
    failures: usize,
}

fn bench() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("OCI_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let me = std::env::current_exe()?;
    let minik8s = std::env::var_os("MINIK8S_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| me.clone());
    // The library's shim: the shim-only binary (what `Runtime::new` picks when installed), or
    // with OCI_BENCH_SHIM=self this bench binary, like the full `minik8s`.
    let shim = match std::env::var("OCI_BENCH_SHIM").as_deref() {
        Ok("self") => me.clone(),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_minik8s-shim")),
    };
    let tmp = tempfile::Builder::new().prefix("oci-bench").tempdir()?;
    // State roots on tmpfs, as /run is on a normal machine (here / is ext4 and there is no /run
    // mount); the same for every runtime.
    let state = tempfile::Builder::new()
        .prefix("oci-bench-state")
        .tempdir_in("/dev/shm")?;
    let bundle = BusyboxBundle::create(&tmp.path().join("bundle"), &["/bin/true"])?;
    let mut rt = Runtime::new(state.path().join("lib-state"))?.with_shim_binary(&shim);
    rt.cgroup_parent = format!("minik8s-bench-{}", std::process::id());
    let has = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };

    let mut peers = vec![
        Peer {
            name: "minik8s-lib",
            times: vec![],
            failures: 0,
        },
        Peer {
            name: "minik8s-cli",
            times: vec![],
            failures: 0,
        },
    ];
    if has("runc") {
        peers.push(Peer {
            name: "runc",
            times: vec![],
            failures: 0,
        });
    }
    if has("crun") {
        peers.push(Peer {
            name: "crun",
            times: vec![],
            failures: 0,
        });
    }
    let count = peers.len();
    for i in 0..n {
        // Rotate who goes first each round: a container's teardown continues in the kernel
        // after its runtime returns (e.g. network namespace cleanup), and whoever runs next
        // pays for it; rotation spreads that evenly.
        for k in 0..count {
            let peer = &mut peers[(i + k) % count];
            let id = format!("bench-{}-{i}", peer.name);
            let start = Instant::now();
            let ok = match peer.name {
                "minik8s-lib" => {
                    let opts = CreateOptions {
                        bundle: bundle.dir.clone(),
                        ..Default::default()
                    };
                    rt.run(&id, &opts)
                        .map(|e| e.exit_code == 0)
                        .unwrap_or(false)
                }
                "minik8s-cli" => {
                    let mut cmd = Command::new(&minik8s);
                    cmd.arg("oci")
                        .arg("--root")
                        .arg(tmp.path().join("cli-state"));
                    cmd.arg("--cgroup-parent").arg(&rt.cgroup_parent);
                    cmd.arg("run").arg("--bundle").arg(&bundle.dir).arg(&id);
                    run_quiet(cmd, false)
                }
                peer_name => {
                    let mut cmd = Command::new(peer_name);
                    cmd.arg("--root")
                        .arg(tmp.path().join(format!("{peer_name}-state")));
                    cmd.arg("run").arg("--bundle").arg(&bundle.dir).arg(&id);
                    run_quiet(cmd, peer_name == "crun")
                }
            };
            let elapsed = start.elapsed();
            if ok {
                peer.times.push(elapsed);
            } else {
                peer.failures += 1;
            }
        }
    }
    let rss = shim_peak_rss(&rt, &bundle)?;
    remove_cgroup_parent(&rt.cgroup_parent);
    report(n, &peers, rss, &shim)
}

/// Runs a runtime's CLI with stdio on /dev/null. Every peer goes through the same fork + exec
/// path (`pre_exec`); crun's hook also gives it a mount namespace without the cgroup2 mount.
fn run_quiet(mut cmd: Command, hide_unified: bool) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            if hide_unified {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let none = std::ptr::null();
                libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH);
            }
            Ok(())
        });
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// VmHWM, RssAnon, RssFile and RssShmem (KiB) of a shim supervising a container that logs and
/// sleeps.
fn shim_peak_rss(
    rt: &Runtime,
    bundle: &BusyboxBundle,
) -> Result<(u64, u64, u64, u64), Box<dyn std::error::Error>> {
    let dir = bundle.dir.parent().unwrap().join("rss-bundle");
    std::fs::create_dir_all(&dir)?;
    let mut b = BusyboxBundle {
        dir: dir.clone(),
        spec: bundle.spec.clone(),
    };
    let mut root = b.spec.root().clone().unwrap();
    root.set_path(bundle.dir.join("rootfs"));
    b.spec.set_root(Some(root));
    b.set_args(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line $i; done; sleep 0.5",
    ])?;
    let id = "bench-rss";
    let opts = CreateOptions {
        bundle: dir.clone(),
        log_path: Some(dir.join("log")),
        ..Default::default()
    };
    rt.create(id, &opts)?;
    rt.start(id)?;
    let shim = rt.shim_pid(id)?;
    let mut peak = (0, 0, 0, 0);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(30));
        let status = std::fs::read_to_string(format!("/proc/{shim}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        peak = (
            peak.0.max(field("VmHWM:")),
            peak.1.max(field("RssAnon:")),
            peak.2.max(field("RssFile:")),
            peak.3.max(field("RssShmem:")),
        );
    }
    rt.wait(id)?;
    rt.delete(id, true)?;
    Ok(peak)
}

fn remove_cgroup_parent(parent: &str) {
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(entry.path().join(parent));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(
    n: usize,
    peers: &[Peer],
    rss: (u64, u64, u64, u64),
    bin: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "create+start+wait+delete of /bin/true, N={n} (interleaved), shim binary {}",
        bin.display()
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>9}",
        "runtime", "median ms", "p90 ms", "mean ms", "failures"
    );
    let mut json = Vec::new();
    for p in peers {
        let mut t = p.times.clone();
        t.sort();
        let median = t.get(t.len() / 2).copied().map(ms).unwrap_or(f64::NAN);
        let p90 = t.get(t.len() * 9 / 10).copied().map(ms).unwrap_or(f64::NAN);
        let mean = if t.is_empty() {
            f64::NAN
        } else {
            t.iter().map(|d| ms(*d)).sum::<f64>() / t.len() as f64
        };
        println!(
            "{:<12} {median:>10.2} {p90:>10.2} {mean:>10.2} {:>9}",
            p.name, p.failures
        );
        json.push(format!(
            "{{\"runtime\":\"{}\",\"n\":{},\"median_ms\":{median:.3},\"p90_ms\":{p90:.3},\"mean_ms\":{mean:.3},\"failures\":{}}}",
            p.name,
            t.len(),
            p.failures
        ));
    }
    println!(
        "shim peak RSS (VmHWM, the shim after its exec of the monitor): {} KiB = {} KiB \
         private anonymous + {} KiB file-backed + {} KiB shmem (the monitor's text, from the \
         state root's file: shared by all shims); target <= 2048 KiB",
        rss.0, rss.1, rss.2, rss.3
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let out = target.join("bench");
    std::fs::create_dir_all(&out)?;
    let text = format!(
        "{{\"benchmark\":\"oci create+start+wait+delete /bin/true\",\"n\":{n},\"shim_binary\":{:?},\"results\":[{}],\"shim_vmhwm_kib\":{},\"shim_rss_anon_kib\":{},\"shim_rss_file_kib\":{},\"shim_rss_shmem_kib\":{}}}\n",
        bin.display().to_string(),
        json.join(","),
        rss.0,
        rss.1,
        rss.2,
        rss.3
    );
    std::fs::write(out.join("oci.json"), text)?;
    println!("wrote {}", out.join("oci.json").display());
    Ok(())
}
