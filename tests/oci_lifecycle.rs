//! End-to-end tests of `minik8s oci` and its library: real containers from busybox bundles
//! (run as root). Each test has its own state root, bundle and cgroup parent.

mod oci_support;

use std::process::Stdio;

use minik8s_runtime::oci::spec::LinuxNamespaceType;
use minik8s_runtime::oci::{Signal, Status};
use oci_support::{eventually, stdout_lines, unique, Env};

#[test]
fn echo_output_reaches_the_cri_log() {
    let env = Env::new();
    let b = env.bundle("b", &["sh", "-c", "echo hello; echo oops >&2; printf tail"]);
    let id = unique("echo");
    let exit = env.rt.run(&id, &env.opts(&b, &id)).unwrap();
    assert_eq!(exit.exit_code, 0);
    let lines = env.log_lines(&id);
    assert!(
        lines.contains(&("stdout".into(), "F".into(), "hello".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "F".into(), "oops".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stdout".into(), "F".into(), "tail".into())),
        "{lines:?}"
    );
}

#[test]
fn cli_run_passes_exit_codes_through() {
    let env = Env::new();
    let mut b = env.bundle("b", &["sh", "-c", "exit 7"]);
    let id = unique("exit");
    let log = env.log_path(&id);
    let status = env
        .cli(&[
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--container-log",
            log.to_str().unwrap(),
            &id,
        ])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    // Killed by a signal: 128 + signal, like a shell. Without a pid namespace the shell is not
    // an init, so it can kill itself.
    let mut linux = b.spec.linux().clone().unwrap();
    let namespaces = linux.namespaces().clone().unwrap();
    linux.set_namespaces(Some(
        namespaces
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Pid)
            .collect(),
    ));
    b.spec.set_linux(Some(linux));
    b.set_args(&["sh", "-c", "kill -9 $$"]).unwrap();
    let status = env
        .cli(&[
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--container-log",
            log.to_str().unwrap(),
            &id,
        ])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(137));
    assert!(
        env.rt.list().unwrap().is_empty(),
        "run must delete its container"
    );
}

#[test]
fn container_is_pid_1_with_its_hostname_and_only_its_mounts() {
    let env = Env::new();
    let b = env.bundle(
        "b",
        &[
            "sh",
            "-c",
            "echo pid=$$; hostname; cat /proc/self/mountinfo; ls /dev; cat /proc/self/status; \
             touch /new 2>/dev/null || echo root-readonly; \
             echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo proc-sys-readonly; \
             echo keys=$(wc -c < /proc/keys)",
        ],
    );
    let id = unique("ns");
    let exit = env.rt.run(&id, &env.opts(&b, &id)).unwrap();
    assert_eq!(exit.exit_code, 0);
    let out = stdout_lines(&env.log_lines(&id));
    assert_eq!(out[0], "pid=1");
    assert_eq!(out[1], "minik8s");
    let mounts: Vec<&str> = out
        .iter()
        .filter(|l| l.contains(" - "))
        .map(|l| l.split(' ').nth(4).unwrap())
        .collect();
    assert!(mounts.contains(&"/") && mounts.contains(&"/proc") && mounts.contains(&"/dev/pts"));
    let host_paths = ["/work", "/tmp", "/mnt", "/home", "/var"];
    for m in &mounts {
        assert!(
            !host_paths.iter().any(|h| m.starts_with(h)),
            "host mount {m} visible in the container: {mounts:?}"
        );
    }
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "shm", "mqueue",
    ] {
        assert!(out.iter().any(|l| l == dev), "/dev/{dev} missing: {out:?}");
    }
    // Capabilities: exactly the bounding set of the bundle (14 default caps = 0xa80425fb).
    let cap_bnd = out.iter().find(|l| l.starts_with("CapBnd:")).unwrap();
    assert!(cap_bnd.ends_with("00000000a80425fb"), "{cap_bnd}");
    let nnp = out.iter().find(|l| l.starts_with("NoNewPrivs:")).unwrap();
    assert!(nnp.ends_with('1'), "{nnp}");
    // root.readonly, readonly /proc/sys, masked /proc/keys (bound to /dev/null: empty)
    for line in ["root-readonly", "proc-sys-readonly", "keys=0"] {
        assert!(out.iter().any(|l| l == line), "{line} missing: {out:?}");
    }
}

#[test]
fn cli_create_start_state_kill_delete() {
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "60"]);
    let id = unique("life");
    let log = env.log_path(&id);
    let pid_file = env.tmp.path().join("pid");
    let out = env
        .cli(&[
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--container-log",
            log.to_str().unwrap(),
            &id,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = |env: &Env| -> serde_state::State {
        let out = env.cli(&["state", &id]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_state::parse(&out.stdout)
    };
    let s = state(&env);
    assert_eq!(s.status, "created");
    assert_eq!(s.id, id);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        s.pid.to_string()
    );
    assert_eq!(s.bundle, b.dir.to_str().unwrap());
    assert!(s.has_keys, "state lacks runc's keys");

    assert!(env.cli(&["start", &id]).status().unwrap().success());
    assert_eq!(state(&env).status, "running");
    let again = env.cli(&["start", &id]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not created"));
    let del = env.cli(&["delete", &id]).output().unwrap();
    assert!(
        !del.status.success(),
        "deleting a running container needs --force"
    );

    let list = env.cli(&["list", "--format", "json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    let ps = env.cli(&["ps", "--format", "json", &id]).output().unwrap();
    assert!(String::from_utf8_lossy(&ps.stdout).contains(&s.pid.to_string()));

    assert!(env.cli(&["kill", &id, "KILL"]).status().unwrap().success());
    let exit = env.rt.wait(&id).unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert_eq!(state(&env).status, "stopped");
    assert!(env.cli(&["delete", &id]).status().unwrap().success());
    let gone = env.cli(&["state", &id]).output().unwrap();
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
    assert!(!env.rt.root.join(&id).exists());
}

#[test]
fn deleting_a_created_container_kills_its_init() {
    let env = Env::new();
    let b = env.bundle("b", &["true"]);
    let id = unique("created");
    let state = env.rt.create(&id, &env.opts(&b, &id)).unwrap();
    assert!(std::path::Path::new(&format!("/proc/{}", state.pid)).exists());
    env.rt.delete(&id, false).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}/stat", state.pid)).exists() || {
            // a recycled pid is not ours
            std::fs::read_to_string(format!("/proc/{}/cmdline", state.pid)).unwrap_or_default()
                != "minik8s"
        }
    );
}

#[test]
fn shim_keeps_the_container_across_the_death_of_its_starter() {
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "60"]);
    let id = unique("orphan");
    let log = env.log_path(&id);
    // A foreground `run` is the starter; kill it while the container runs.
    let mut starter = env
        .cli(&[
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--container-log",
            log.to_str().unwrap(),
            &id,
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    eventually(10, "container running", || {
        env.rt
            .state(&id)
            .map(|s| s.status == Status::Running)
            .unwrap_or(false)
    });
    starter.kill().unwrap();
    starter.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Running);
    env.rt.kill(&id, Signal::SIGKILL, false).unwrap();
    let exit = env.rt.wait(&id).unwrap();
    assert_eq!(
        exit.exit_code, 137,
        "the shim recorded the exit after its starter died"
    );
    env.rt.delete(&id, false).unwrap();
}

#[test]
fn bad_bundles_fail_clearly_and_leave_nothing() {
    let env = Env::new();
    let mut b = env.bundle("b", &["/bin/nope"]);
    let id = unique("bad");
    let err = env
        .rt
        .create(&id, &env.opts(&b, &id))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "exec: no such file: /bin/nope");
    assert!(env.rt.list().unwrap().is_empty());
    assert!(oci_support::cgroup_dirs(&format!("{}/{id}", env.rt.cgroup_parent)).is_empty());

    // unknown namespace type
    let json = b
        .config_json()
        .replacen("\"type\": \"pid\"", "\"type\": \"bogus\"", 1);
    assert!(json.contains("bogus"));
    std::fs::write(b.dir.join("config.json"), json).unwrap();
    let err = env
        .rt
        .create(&id, &env.opts(&b, &id))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown namespace type \"bogus\""), "{err}");

    // invalid JSON
    std::fs::write(b.dir.join("config.json"), "{").unwrap();
    let err = env
        .rt
        .create(&id, &env.opts(&b, &id))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid config.json") && err.contains("config.json"),
        "{err}"
    );

    // missing rootfs
    b.set_args(&["true"]).unwrap();
    std::fs::remove_dir_all(b.dir.join("rootfs")).unwrap();
    let out = env
        .cli(&["create", "--bundle", b.dir.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rootfs") && stderr.contains("no such directory"),
        "{stderr}"
    );
    assert!(env.rt.list().unwrap().is_empty());
    assert!(!env.rt.root.join(&id).exists());
}

#[test]
fn no_mount_leaks_into_the_host() {
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "60"]);
    let id = unique("leak");
    let bundle_path = b.dir.to_str().unwrap().to_string();
    let host_mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    env.rt.create(&id, &env.opts(&b, &id)).unwrap();
    env.rt.start(&id).unwrap();
    assert!(
        !host_mounts().contains(&bundle_path),
        "container mounts visible on the host"
    );
    env.rt.delete(&id, true).unwrap();
    assert!(!host_mounts().contains(&bundle_path));
    assert!(!env.rt.root.join(&id).exists());
    assert!(oci_support::cgroup_dirs(&format!("{}/{id}", env.rt.cgroup_parent)).is_empty());
}

mod serde_state {
    pub struct State {
        pub id: String,
        pub pid: i32,
        pub status: String,
        pub bundle: String,
        pub has_keys: bool,
    }

    pub fn parse(bytes: &[u8]) -> State {
        let s = minik8s_runtime::oci::ContainerState::from_json(bytes).unwrap();
        let text = String::from_utf8_lossy(bytes);
        let has_keys = [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ]
        .iter()
        .all(|k| text.contains(&format!("\"{k}\"")));
        State {
            id: s.id,
            pid: s.pid,
            status: s.status.to_string(),
            bundle: s.bundle.display().to_string(),
            has_keys,
        }
    }
}

#[test]
fn exec_runs_in_the_containers_namespaces_and_cgroup() {
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "60"]);
    let id = unique("exec");
    let init = env.rt.create(&id, &env.opts(&b, &id)).unwrap().pid;
    env.rt.start(&id).unwrap();
    let out = env
        .cli(&[
            "exec",
            &id,
            "sh",
            "-c",
            "hostname; readlink /proc/1/exe; exit 4",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["minik8s", "/bin/busybox"]
    );
    let missing = env.cli(&["exec", &id, "/bin/nope"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "exec: no such file: /bin/nope"
    );
    let process = env.tmp.path().join("process.json");
    std::fs::write(
        &process,
        r#"{"args":["sh","-c","exit 6"],"cwd":"/","user":{"uid":0,"gid":0},"env":["PATH=/bin"]}"#,
    )
    .unwrap();
    let from_file = env
        .cli(&["exec", "--process", process.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert_eq!(
        from_file.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    // The exec'd process joined the container's cgroup: `ps` lists it while it runs.
    let mut sleeper = env
        .cli(&["exec", &id, "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    eventually(10, "exec'd process in the cgroup", || {
        env.rt.ps(&id).unwrap().len() >= 2
    });
    assert!(env.rt.ps(&id).unwrap().contains(&init));
    env.rt.delete(&id, true).unwrap();
    let status = sleeper.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(137),
        "the exec'd process dies with its container"
    );
}

#[test]
fn delete_removes_the_leftovers_of_an_interrupted_create() {
    let env = Env::new();
    let id = unique("half");
    std::fs::create_dir_all(env.rt.root.join(&id)).unwrap();
    env.rt.delete(&id, false).unwrap();
    assert!(!env.rt.root.join(&id).exists());
    let err = env.rt.delete(&id, false).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn bind_and_overlay_mounts_from_config_json() {
    use minik8s_runtime::oci::spec::MountBuilder;
    let env = Env::new();
    let host = env.tmp.path().join("host");
    for d in ["data", "lower", "upper", "work"] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    std::fs::write(host.join("data/file"), "from the host\n").unwrap();
    std::fs::write(host.join("lower/base"), "lower layer\n").unwrap();
    let script = "cat /data/file; touch /data/new 2>/dev/null || echo data-readonly; \
                  cat /merged/base; echo written > /merged/new && echo merged-writable";
    let mut b = env.bundle("b", &["sh", "-c", script]);
    let mut mounts = b.spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source(host.join("data"))
            .options(vec!["rbind".to_string(), "ro".to_string()])
            .build()
            .unwrap(),
    );
    let overlay = format!(
        "lowerdir={},upperdir={},workdir={}",
        host.join("lower").display(),
        host.join("upper").display(),
        host.join("work").display()
    );
    mounts.push(
        MountBuilder::default()
            .destination("/merged")
            .typ("overlay")
            .source("overlay")
            .options(vec![overlay])
            .build()
            .unwrap(),
    );
    b.spec.set_mounts(Some(mounts));
    b.save().unwrap();
    let id = unique("mounts");
    let exit = env.rt.run(&id, &env.opts(&b, &id)).unwrap();
    let out = stdout_lines(&env.log_lines(&id));
    assert_eq!(exit.exit_code, 0, "{out:?} {:?}", env.log_lines(&id));
    assert_eq!(
        out,
        [
            "from the host",
            "data-readonly",
            "lower layer",
            "merged-writable"
        ]
    );
    // The overlay's writes land in its upper directory on the host.
    assert_eq!(
        std::fs::read_to_string(host.join("upper/new")).unwrap(),
        "written\n"
    );
    assert!(!host.join("data/new").exists());
}

#[test]
fn cli_run_forwards_signals_to_the_container() {
    let env = Env::new();
    let b = env.bundle(
        "b",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; while true; do sleep 0.05; done",
        ],
    );
    let id = unique("fwd");
    let log = env.log_path(&id);
    let mut run = env
        .cli(&[
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--container-log",
            log.to_str().unwrap(),
            &id,
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Signal only once the shell has set its trap: pid 1 ignores signals it has no handler for.
    eventually(10, "the trap to be set", || {
        stdout_lines(&env.log_lines(&id))
            .first()
            .is_some_and(|l| l == "ready")
    });
    let pid = run.id() as i32;
    assert_eq!(send_signal(pid, 15), 0);
    let status = run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "the container's trap decides the exit code"
    );
    assert_eq!(stdout_lines(&env.log_lines(&id)), ["ready", "got-term"]);
}

fn send_signal(pid: i32, sig: i32) -> i32 {
    // The test package has no libc dependency; `kill` from busybox-static does the job.
    let status = std::process::Command::new("/bin/busybox")
        .args(["kill", &format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    if status.success() {
        0
    } else {
        1
    }
}

#[test]
fn an_exec_failure_after_start_is_recorded_in_the_exit_status() {
    // An executable file the kernel cannot run: the init finds it and reports ready, and only
    // the execve after `start` fails (ENOEXEC). The init says why on its socket; the monitor
    // puts that in exit.json.
    let env = Env::new();
    let b = env.bundle("b", &["/not-a-program"]);
    let program = b.dir.join("rootfs/not-a-program");
    std::fs::write(&program, b"\x01\x02 neither ELF nor script\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let id = unique("enoexec");
    env.rt.create(&id, &env.opts(&b, &id)).unwrap();
    env.rt.start(&id).unwrap();
    let exit = env.rt.wait(&id).unwrap();
    assert_ne!(exit.exit_code, 0, "{exit:?}");
    let error = exit.error.expect("the exec error is recorded");
    assert!(error.contains("/not-a-program"), "{error}");
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Stopped);
}
