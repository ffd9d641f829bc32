//! Namespace types of config.json mapped to clone(2)/setns(2) flags and /proc/<pid>/ns names.

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

/// The clone flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The entry under /proc/<pid>/ns/ of a namespace type.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Which namespaces are new (clone flags) and which are joined by path.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Flags for clone(2) except the cgroup namespace, which the init unshares itself once the
    /// shim has moved it into its cgroup (so the namespace is rooted there, like runc).
    pub clone_flags: libc::c_int,
    pub new_cgroup_ns: bool,
    /// (type, path) to setns(2) into; pid is joined by the shim before clone.
    pub join: Vec<(LinuxNamespaceType, std::path::PathBuf)>,
}

impl Plan {
    pub fn new(namespaces: &[LinuxNamespace]) -> Plan {
        let mut plan = Plan::default();
        for ns in namespaces {
            match ns.path() {
                Some(path) => plan.join.push((ns.typ(), path.clone())),
                None if ns.typ() == LinuxNamespaceType::Cgroup => plan.new_cgroup_ns = true,
                None => plan.clone_flags |= clone_flag(ns.typ()),
            }
        }
        plan
    }

    pub fn has(&self, typ: LinuxNamespaceType) -> bool {
        (typ == LinuxNamespaceType::Cgroup && self.new_cgroup_ns)
            || self.clone_flags & clone_flag(typ) != 0
            || self.join.iter().any(|(t, _)| *t == typ)
    }

    pub fn is_new(&self, typ: LinuxNamespaceType) -> bool {
        (typ == LinuxNamespaceType::Cgroup && self.new_cgroup_ns)
            || (typ != LinuxNamespaceType::Cgroup && self.clone_flags & clone_flag(typ) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceBuilder;

    #[test]
    fn plan_splits_new_and_joined() {
        let nss = vec![
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Pid)
                .build()
                .unwrap(),
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Cgroup)
                .build()
                .unwrap(),
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path("/proc/1/ns/net")
                .build()
                .unwrap(),
        ];
        let plan = Plan::new(&nss);
        assert_eq!(plan.clone_flags, libc::CLONE_NEWPID);
        assert!(plan.new_cgroup_ns);
        assert!(plan.has(LinuxNamespaceType::Network));
        assert!(!plan.is_new(LinuxNamespaceType::Network));
        assert_eq!(plan.join.len(), 1);
    }
}
