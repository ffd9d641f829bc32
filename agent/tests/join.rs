//! Joining against a real API server (in-process, on 127.0.0.1:0): the CA comes from the
//! unauthenticated `/cacerts` and is pinned by the token; a wrong hash or a wrong secret is
//! refused before anything is written; a plain secret joins without pinning.

use std::time::Duration;

use minik8s_agent::join::{self, JoinError, ServerUrl};
use minik8s_agent::token::{ca_hash, JoinToken};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn join_pins_the_ca_and_checks_the_secret() {
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("timed out after 60s: the API server or a join request hung");
}

async fn scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let config =
        minik8s_apiserver::Config::new(tmp.path().join("server"), "127.0.0.1:0".parse().unwrap());
    let api = minik8s_apiserver::start(config, shutdown.clone())
        .await
        .expect("API server starts");
    let server = ServerUrl::parse(&format!("https://127.0.0.1:{}", api.addr.port())).unwrap();
    let secret = std::fs::read_to_string(tmp.path().join("server/node-token")).unwrap();
    let secret = secret.trim();

    // /cacerts serves exactly the CA the server's certificate chains to.
    let served = join::fetch_ca(&server).await.expect("GET /cacerts");
    assert_eq!(served, api.ca_pem.as_bytes());

    let good = JoinToken::parse(&JoinToken::format(api.ca_pem.as_bytes(), secret)).unwrap();
    let dir = tmp.path().join("agent");
    let kubeconfig = join::join(&server, &good, &dir).await.expect("joins");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains(&server.url) && text.contains(secret),
        "{text}"
    );

    let wrong_ca = JoinToken {
        ca_hash: Some(ca_hash(b"another CA")),
        secret: secret.to_string(),
    };
    let dir = tmp.path().join("wrong-ca");
    match join::join(&server, &wrong_ca, &dir).await {
        Err(JoinError::CaMismatch { got, .. }) => assert_eq!(got, ca_hash(api.ca_pem.as_bytes())),
        other => panic!("want CaMismatch, got {other:?}"),
    }
    assert!(!dir.exists(), "nothing written on a CA mismatch");

    let wrong_secret = JoinToken {
        secret: "not-the-secret".into(),
        ..good.clone()
    };
    let dir = tmp.path().join("wrong-secret");
    let err = join::join(&server, &wrong_secret, &dir).await.unwrap_err();
    assert!(matches!(err, JoinError::Unauthorized { .. }), "{err}");
    assert!(!dir.exists(), "nothing written on a rejected secret");

    // A plain secret (no K10 prefix) joins, trusting the CA on first use.
    let plain = JoinToken::parse(secret).unwrap();
    assert_eq!(plain.ca_hash, None);
    let dir = tmp.path().join("plain");
    join::join(&server, &plain, &dir)
        .await
        .expect("plain token joins");
    assert!(dir.join("kubeconfig").exists());

    shutdown.cancel();
    api.handle.await.unwrap().unwrap();
}

/// An agent started before its server keeps retrying (k3s does too) and stops cleanly.
#[tokio::test]
async fn agent_retries_an_unreachable_server_until_shutdown() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: minik8s_agent::AgentArgs,
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tmp.path().join("agent");
    let url = format!("https://127.0.0.1:{port}");
    let data_dir = dir.display().to_string();
    let config = Cli::parse_from([
        "agent",
        "--server",
        &url,
        "--token",
        "secret",
        "--data-dir",
        &data_dir,
    ])
    .args
    .into_config()
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(minik8s_agent::agent::run(config, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !task.is_finished(),
        "the agent gave up on an unreachable server"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("timed out after 10s: the agent did not stop while waiting to join")
        .unwrap()
        .expect("a cancelled join is a clean stop");
    assert!(!dir.exists(), "nothing written before joining");
}
