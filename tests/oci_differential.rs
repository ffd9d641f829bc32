//! Differential test: the same bundle run by `runc` (the reference, installed here) and by
//! `minik8s oci`; what the process sees must agree: its namespaces, mounts, cgroup limits,
//! capabilities, identity and exit code.

mod oci_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use minik8s_runtime::oci::busybox::BusyboxBundle;
use minik8s_runtime::oci::spec::{
    Capabilities, Capability, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResourcesBuilder, PosixRlimitBuilder, PosixRlimitType,
};
use oci_support::{unique, Env};

/// Prints what the process sees, one `kind value` per line, then exits 3.
const PROBE: &str = r#"
for n in cgroup ipc mnt net pid uts; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
awk '{for(i=1;i<=NF;i++) if($i=="-") print "mount", $5, $(i+1)}' /proc/self/mountinfo
grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status | sed 's/^/status /'
echo "limit memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
echo "limit pids $(cat /sys/fs/cgroup/pids/pids.max)"
echo "limit cpu $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.shares)"
echo "cgroup $(grep memory /proc/self/cgroup)"
echo "id $(id)"
echo "hostname $(hostname)"
echo "pid $$"
echo x > /dev/null && head -c 4 /dev/zero | wc -c | sed 's/^/devices usable /'

echo "umask $(umask)"
echo "rlimit nofile $(ulimit -n) $(ulimit -Hn)"
echo "cwd $(pwd)"
ls -la /dev | awk '{print "dev", $1, $NF}'
exit 3
"#;

fn runc_available() -> bool {
    Command::new("runc")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A bundle whose config.json points at a shared rootfs, with its own cgroup path.
fn bundle_for(env: &Env, shared: &BusyboxBundle, name: &str) -> std::path::PathBuf {
    let dir = env.tmp.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = shared.spec.clone();
    let mut root = spec.root().clone().unwrap();
    root.set_path(shared.dir.join("rootfs"));
    spec.set_root(Some(root));
    let mut linux = spec.linux().clone().unwrap();
    linux.set_cgroups_path(Some(format!("/{}/{name}", env.rt.cgroup_parent).into()));
    spec.set_linux(Some(linux));
    let b = BusyboxBundle {
        dir: dir.clone(),
        spec,
    };
    b.save().unwrap();
    dir
}

/// What the probe printed, with namespace inodes replaced by "host" or "new".
fn observe(stdout: &[u8]) -> BTreeSet<String> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.splitn(3, ' ').collect();
            if parts[0] == "ns" {
                let host = std::fs::read_link(format!("/proc/self/ns/{}", parts[1])).unwrap();
                let same = host.to_string_lossy() == parts[2];
                format!("ns {} {}", parts[1], if same { "host" } else { "new" })
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[test]
fn minik8s_and_runc_give_the_process_the_same_world() {
    if !runc_available() {
        eprintln!("runc not installed: skipping the differential test");
        return;
    }
    let env = Env::new();
    let mut shared = env.bundle("shared", &["sh", "-c", PROBE]);
    let mut linux = shared.spec.linux().clone().unwrap();
    let devices = linux.resources().clone().unwrap().devices().clone();
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .devices(devices.unwrap())
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 * 1024 * 1024)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .period(100_000u64)
                    .shares(256u64)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    ));
    shared.spec.set_linux(Some(linux));
    shared.save().unwrap();
    compare(
        &env,
        &shared,
        &[
            "pid 1",
            "hostname minik8s",
            "umask 0022",
            "ns net new",
            "ns cgroup new",
        ],
    );
}

/// Runs `shared` under runc and under minik8s; both must exit 3 and print the same probe.
fn compare(env: &Env, shared: &BusyboxBundle, expect: &[&str]) {
    let runc_bundle = bundle_for(env, shared, "runc");
    let runc_root = env.tmp.path().join("runc-state");
    let runc_id = unique("diff-runc");
    let runc = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["run", "--bundle"])
        .arg(&runc_bundle)
        .arg(&runc_id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _cleanup = RuncCleanup(&runc_root, runc_id.clone());

    let ours_bundle = bundle_for(env, shared, "ours");
    let ours = env
        .cli(&[
            "run",
            "--bundle",
            ours_bundle.to_str().unwrap(),
            &unique("diff-ours"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();

    assert_eq!(
        runc.status.code(),
        Some(3),
        "runc: {}",
        String::from_utf8_lossy(&runc.stderr)
    );
    assert_eq!(
        ours.status.code(),
        Some(3),
        "minik8s: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let (r, o) = (observe(&runc.stdout), observe(&ours.stdout));
    assert!(
        r.iter().any(|l| l.starts_with("mount ")) && r.len() > 20,
        "probe output too short: {r:?}"
    );
    assert!(
        r.contains("devices usable 4"),
        "default devices unusable under runc: {r:?}"
    );
    for line in expect {
        assert!(
            r.contains(*line),
            "runc's process did not see {line:?}: {r:#?}"
        );
    }
    // The one intended difference: on a hybrid host the cgroups module also mounts the
    // controller-less cgroup2 hierarchy at /sys/fs/cgroup/unified (as runc itself does without
    // a cgroup namespace, and as systemd inside a container expects); runc 1.1 omits it when the
    // container has a cgroup namespace.
    let intended: BTreeSet<String> = ["mount /sys/fs/cgroup/unified cgroup2".to_string()].into();
    let only_runc: Vec<_> = r.difference(&o).collect();
    let only_ours: Vec<_> = o
        .difference(&r)
        .filter(|l| !intended.contains(*l))
        .collect();
    assert!(
        only_runc.is_empty() && only_ours.is_empty(),
        "runc and minik8s differ:\n only runc: {only_runc:#?}\n only minik8s: {only_ours:#?}"
    );
}

#[test]
fn minik8s_and_runc_agree_on_an_unprivileged_user() {
    if !runc_available() {
        eprintln!("runc not installed: skipping the differential test");
        return;
    }
    let env = Env::new();
    let mut shared = env.bundle("shared", &["sh", "-c", PROBE]);
    let mut process = shared.spec.process().clone().unwrap();
    let mut user = process.user().clone();
    user.set_uid(65534);
    user.set_gid(65534);
    user.set_additional_gids(Some(vec![10, 20]));
    user.set_umask(Some(0o077));
    process.set_user(user);
    let mut caps = process.capabilities().clone().unwrap();
    let mut inheritable = Capabilities::new();
    inheritable.insert(Capability::NetBindService);
    caps.set_inheritable(Some(inheritable.clone()));
    caps.set_ambient(Some(inheritable));
    process.set_capabilities(Some(caps));
    process.set_rlimits(Some(vec![PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(100u64)
        .hard(200u64)
        .build()
        .unwrap()]));
    process.set_cwd("/tmp".into());
    shared.spec.set_process(Some(process));
    shared.spec.set_hostname(Some("other".into()));
    shared.save().unwrap();
    let expect = [
        "id uid=65534(nobody) gid=65534(nogroup) groups=10,20",
        "umask 0077",
        "status CapAmb:\t0000000000000400",
        "status CapEff:\t0000000000000400",
        "rlimit nofile 100 200",
        "cwd /tmp",
        "hostname other",
    ];
    compare(&env, &shared, &expect);
}

/// runc leaves its state behind if the test fails midway.
struct RuncCleanup<'a>(&'a Path, String);
impl Drop for RuncCleanup<'_> {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(self.0)
            .args(["delete", "--force", &self.1])
            .output();
    }
}
