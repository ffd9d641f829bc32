//! minictl: the kubectl-like command line for minik8s, as a library so tests can drive it.
//! It talks to the API server only through the `kube` crate and reads standard kubeconfig
//! files; each verb lives in `cmd/`, the printers beside it.

pub mod cli;
pub mod cmd;
pub mod describe;
pub mod discovery;
pub mod error;
pub mod jsonpath;
pub mod kubeconfig;
pub mod manifest;
pub mod output;
pub mod schema;
pub mod session;
pub mod table;
pub mod target;
pub mod yaml;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::session::Session;

/// Runs one command line to completion.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let global = &cli.global;
    // Verbs that need no server.
    match &cli.command {
        Command::Config(c) => return Ok(kubeconfig::run(global, c)?),
        Command::Cluster(c) => {
            return cmd::cluster::run(c)
                .await
                .map_err(|e| Error::Failed(e.to_string()))
        }
        Command::Completion(c) => {
            let mut cmd = Cli::command();
            clap_complete::generate(c.shell, &mut cmd, "minictl", &mut std::io::stdout());
            return Ok(());
        }
        _ => {}
    }
    let session = Session::connect(global).await?;
    error::remember_server(&session.client_url());
    let s = &session;
    match &cli.command {
        Command::Apply(a) => cmd::apply::run(s, a, cmd::apply::Mode::Apply).await,
        Command::Create(a) => cmd::apply::run(s, a, cmd::apply::Mode::Create).await,
        Command::Replace(a) => cmd::apply::run(s, a, cmd::apply::Mode::Replace).await,
        Command::Get(a) => cmd::get::run(s, a).await,
        Command::Describe(a) => cmd::describe::run(s, a).await,
        Command::Delete(a) => cmd::delete::run(s, a).await,
        Command::Logs(a) => cmd::logs::run(s, a).await,
        Command::Scale(a) => cmd::scale::run(s, a).await,
        Command::Rollout(r) => cmd::rollout::run(s, r).await,
        Command::Cordon(a) => cmd::node::cordon(s, &a.node, true).await,
        Command::Uncordon(a) => cmd::node::cordon(s, &a.node, false).await,
        Command::Drain(a) => cmd::node::drain(s, a).await,
        Command::Label(a) => cmd::metadata::run(s, a, cmd::metadata::Field::Labels).await,
        Command::Annotate(a) => cmd::metadata::run(s, a, cmd::metadata::Field::Annotations).await,
        Command::Edit(a) => cmd::edit::run(s, a).await,
        Command::Version => cmd::info::version(s).await,
        Command::ClusterInfo => cmd::info::cluster_info(s).await,
        Command::ApiResources(a) => cmd::info::api_resources(s, a).await,
        Command::Config(_) | Command::Completion(_) | Command::Cluster(_) => {
            unreachable!("handled above")
        }
    }
}
