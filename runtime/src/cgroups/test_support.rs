//! What the host tests share: unique cgroup names, a guard that kills and removes on every path,
//! held child processes, and the checks both layouts run.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::*;

pub(super) static NEXT: AtomicUsize = AtomicUsize::new(0);

pub(super) fn unique_name() -> String {
    format!(
        "minik8s-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Owns a test cgroup (its top level) and the processes the test spawned.
pub(super) struct Guard {
    pub(super) top: Cgroup,
    pub(super) children: Vec<Child>,
}

impl Guard {
    pub(super) fn new(layout: &Layout, top: &str) -> Guard {
        Guard {
            top: Cgroup::open(layout, top),
            children: Vec::new(),
        }
    }

    /// Spawn `sh -c script` held at a `read` on stdin until [`Guard::release`], so it can be
    /// moved into the cgroup before it does anything.
    pub(super) fn spawn_held(&mut self, script: &str) -> usize {
        self.spawn_held_env(script, &[])
    }

    pub(super) fn spawn_held_env(&mut self, script: &str, env: &[(&str, &str)]) -> usize {
        let child = Command::new("sh")
            .envs(env.iter().copied())
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning sh");
        self.children.push(child);
        self.children.len() - 1
    }

    pub(super) fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    pub(super) fn release(&mut self, i: usize) {
        let stdin = self.children[i].stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Wait for child `i` to exit (bounded), returning (exit code or -signal, stderr).
    pub(super) fn wait(&mut self, i: usize, limit: Duration) -> (i32, String) {
        let (code, _, err) = self.wait_output(i, limit);
        (code, err)
    }

    /// Like [`Guard::wait`], also returning stdout. Only for children that write little: the
    /// pipes are read after exit.
    pub(super) fn wait_output(&mut self, i: usize, limit: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + limit;
        let child = &mut self.children[i];
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let (mut out, mut err) = (String::new(), String::new());
                let mut stdout = child.stdout.take().unwrap();
                stdout.read_to_string(&mut out).unwrap();
                let mut stderr = child.stderr.take().unwrap();
                stderr.read_to_string(&mut err).unwrap();
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| -status.signal().unwrap_or(0));
                return (code, out, err);
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit in {limit:?}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.top.kill_all(libc::SIGKILL);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.top.remove() {
            eprintln!("test cleanup: {e}");
        }
    }
}

pub(super) fn v1() -> Option<Layout> {
    let layout = Layout::detect().unwrap();
    if layout.is_v2() {
        eprintln!("host is cgroup v2; v1 host tests skipped");
        return None;
    }
    Some(layout)
}

pub(super) fn limits(memory: Option<i64>, pids: Option<i64>) -> LinuxResources {
    let mut b = LinuxResourcesBuilder::default();
    if let Some(m) = memory {
        let mut mb = LinuxMemoryBuilder::default().limit(m);
        if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            mb = mb.swap(m); // no swap on top of the limit, so a hog is killed rather than swapped
        }
        b = b.memory(mb.build().unwrap());
    }
    if let Some(p) = pids {
        b = b.pids(LinuxPidsBuilder::default().limit(p).build().unwrap());
    }
    b.build().unwrap()
}

pub(super) fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

/// Size of a file the test process keeps appending to.
pub(super) fn len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The state letter in /proc/<pid>/stat (after the parenthesised comm).
pub(super) fn task_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(") ").next().unwrap().chars().next().unwrap()
}

pub(super) fn assert_freeze_stops_and_thaw_resumes(
    cg: &Cgroup,
    g: &mut Guard,
    dir: &std::path::Path,
) {
    let out = dir.join("ticks");
    let i = g.spawn_held(&format!("while :; do echo x >> {}; done", out.display()));
    cg.add_process(g.pid(i)).unwrap();
    g.release(i);
    wait_for(|| len(&out) > 0, "the writer never ran");
    cg.freeze().unwrap();
    if !cg.layout().is_v2() {
        // The v1 freezer parks tasks in TASK_FROZEN, which /proc shows as 'D'.
        assert_eq!(
            read(&cg.dir_for("freezer").unwrap().join("freezer.state")),
            "FROZEN"
        );
        assert_eq!(task_state(g.pid(i)), 'D');
    } else {
        assert_eq!(read(&cg.dirs()[0].dir.join("cgroup.freeze")), "1");
    }
    let frozen_at = len(&out);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(len(&out), frozen_at, "a frozen process kept writing");
    cg.thaw().unwrap();
    wait_for(|| len(&out) > frozen_at, "a thawed process did not resume");
}

/// Poll `cond` for up to 2 s (the machine is shared and can be slow), failing with `what`.
pub(super) fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(super) fn assert_kill_all_then_remove(layout: &Layout, cg: &Cgroup, g: &mut Guard) {
    let i = g.spawn_held("for i in 1 2 3; do sleep 30 >/dev/null 2>&1 & done; wait");
    cg.add_process(g.pid(i)).unwrap();
    g.release(i);
    let deadline = Instant::now() + Duration::from_secs(2);
    while cg.pids().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "children never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    cg.kill_all(libc::SIGKILL).unwrap();
    let (code, _) = g.wait(i, Duration::from_secs(2));
    assert_eq!(code, -libc::SIGKILL);
    cg.remove().unwrap();
    for h in cg.dirs() {
        assert!(!h.dir.exists(), "{} left behind", h.dir.display());
    }
    let _ = layout;
}

/// The controller-less cgroup2 of a hybrid host still has the v2 core: procs, freeze, kill.
pub(super) fn hybrid_unified() -> Option<Layout> {
    let root = std::path::Path::new("/sys/fs/cgroup/unified");
    if Layout::detect().ok()?.is_v2() || !files::is_cgroupfs(root) {
        return None;
    }
    Some(Layout::V2 {
        root: root.to_path_buf(),
    })
}

/// Serializes the tests that change the v2 root's subtree_control, so each restores what it saw.
pub(super) static UNIFIED_ROOT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Restores a cgroup2 directory's cgroup.subtree_control on drop.
pub(super) struct RestoreSubtree {
    path: std::path::PathBuf,
    before: String,
}

impl RestoreSubtree {
    pub(super) fn new(dir: &std::path::Path) -> RestoreSubtree {
        let path = dir.join("cgroup.subtree_control");
        let before = read(&path);
        RestoreSubtree { path, before }
    }
}

impl Drop for RestoreSubtree {
    fn drop(&mut self) {
        for c in read(&self.path).split_whitespace() {
            if !self.before.split_whitespace().any(|b| b == c) {
                let _ = files::write(&self.path, &format!("-{c}"));
            }
        }
    }
}
