//! Leader election: with --leader-elect the controllers act only while holding the Lease
//! kube-system/minik8s-controller-manager.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DeploymentStrategy;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::Api;
use minik8s_leader::LeaseConfig;
use support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_holds_the_lease_and_runs_controllers() {
    within(
        30,
        "the leader never took the lease or never acted",
        async {
            let c = Cluster::start_without_controllers().await;
            let mut config = minik8s_controller_manager::Config::new(c.kubeconfig.clone());
            config.leader = Some(LeaseConfig {
                namespace: "kube-system".into(),
                name: "minik8s-controller-manager".into(),
                identity: "cm-test-1".into(),
                lease_duration: Duration::from_secs(3),
                renew_deadline: Duration::from_secs(2),
                retry_period: Duration::from_millis(300),
            });
            let shutdown = CancellationToken::new();
            let _stop = shutdown.clone().drop_guard();
            tokio::spawn(minik8s_controller_manager::run(config, shutdown));
            let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
            eventually(10, "the lease to name the controller-manager", || async {
                let l = leases.get_opt("minik8s-controller-manager").await.ok()??;
                (l.spec?.holder_identity.as_deref() == Some("cm-test-1")).then_some(())
            })
            .await;
            c.deployments()
                .create(
                    &PostParams::default(),
                    &deployment("led", 2, DeploymentStrategy::default()),
                )
                .await
                .expect("creating the deployment");
            eventually(10, "the leader's controllers to create pods", || async {
                (c.active_pods().await.len() == 2).then_some(())
            })
            .await;
        },
    )
    .await;
}
