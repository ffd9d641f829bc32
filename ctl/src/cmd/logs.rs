//! `logs POD [-c C] [-f] [--tail N] [--previous]` through the pods/log subresource.

use futures::AsyncBufReadExt;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use crate::cli::LogsArgs;
use crate::error::Error;
use crate::session::Session;

/// kubectl's annotation naming the container `logs`/`exec` use by default.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

pub async fn run(s: &Session, args: &LogsArgs) -> Result<(), Error> {
    let name = match args.pod.split_once('/') {
        Some(("pod" | "pods" | "po", n)) => n,
        Some((other, _)) => {
            return Err(Error::Usage(format!(
                "cannot get the logs from {other}: only pods are supported"
            )))
        }
        None => args.pod.as_str(),
    };
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &s.namespace);
    let mut container = args.container.clone();
    if container.is_none() {
        let pod = pods.get(name).await?;
        let names: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        if names.len() > 1 {
            let chosen = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CONTAINER).cloned())
                .unwrap_or_else(|| names[0].clone());
            eprintln!(
                "Defaulted container \"{chosen}\" out of: {}",
                names.join(", ")
            );
            container = Some(chosen);
        }
    }
    let lp = LogParams {
        container,
        follow: args.follow,
        previous: args.previous,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        timestamps: args.timestamps,
        ..Default::default()
    };
    let stream = pods.log_stream(name, &lp).await?;
    let mut lines = stream.lines();
    while let Some(line) = lines
        .try_next()
        .await
        .map_err(|e| Error::io("read the log stream", e))?
    {
        println!("{line}");
    }
    Ok(())
}
