//! Two containers in one network namespace (how a pod's containers share its sandbox's): the
//! second joins the first's by `namespaces[].path` and reaches its server on 127.0.0.1.

mod oci_support;

use minik8s_runtime::oci::spec::{Capability, LinuxNamespaceBuilder, LinuxNamespaceType};
use minik8s_runtime::oci::Status;
use oci_support::{eventually, stdout_lines, unique, Env};

#[test]
fn joined_network_namespace_reaches_the_server_on_localhost() {
    let env = Env::new();
    // The "sandbox": brings loopback up (CNI's loopback plugin does this for real pods) and
    // serves a page on 127.0.0.1 only.
    let mut server = env.bundle(
        "server",
        &["sh", "-c", "ip link set lo up && readlink /proc/self/ns/net && exec httpd -f -p 127.0.0.1:8080 -h /www"],
    );
    std::fs::create_dir_all(server.dir.join("rootfs/www")).unwrap();
    std::fs::write(
        server.dir.join("rootfs/www/index.html"),
        "hello from the sandbox\n",
    )
    .unwrap();
    let mut process = server.spec.process().clone().unwrap();
    let mut caps = process.capabilities().clone().unwrap();
    let mut set = caps.bounding().clone().unwrap();
    set.insert(Capability::NetAdmin);
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    process.set_capabilities(Some(caps));
    server.spec.set_process(Some(process));
    server.save().unwrap();
    let server_id = unique("sandbox");
    let state = env
        .rt
        .create(&server_id, &env.opts(&server, &server_id))
        .unwrap();
    env.rt.start(&server_id).unwrap();

    let script = "readlink /proc/self/ns/net; \
                  for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1";
    let mut client = env.bundle("client", &["sh", "-c", script]);
    let mut linux = client.spec.linux().clone().unwrap();
    let mut namespaces: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(format!("/proc/{}/ns/net", state.pid))
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(namespaces));
    client.spec.set_linux(Some(linux));
    client.save().unwrap();
    let client_id = unique("app");
    let exit = env
        .rt
        .run(&client_id, &env.opts(&client, &client_id))
        .unwrap();
    let client_out = stdout_lines(&env.log_lines(&client_id));
    assert_eq!(
        exit.exit_code, 0,
        "client could not reach the server: {client_out:?}"
    );
    assert_eq!(client_out.last().unwrap(), "hello from the sandbox");

    eventually(5, "server output", || !env.log_lines(&server_id).is_empty());
    let server_out = stdout_lines(&env.log_lines(&server_id));
    assert_eq!(
        server_out[0], client_out[0],
        "both must be in one network namespace"
    );
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        server_out[0],
        host_ns.to_string_lossy(),
        "the sandbox must not use the host's"
    );
    assert_eq!(env.rt.state(&server_id).unwrap().status, Status::Running);
    env.rt.delete(&server_id, true).unwrap();
}
