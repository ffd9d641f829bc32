//! The command line, as clap derive structs. Flag names and defaults follow kubectl's so
//! muscle memory carries over (`kubectl <verb> --help`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "minictl",
    version,
    about = "minictl controls the minik8s cluster manager (kubectl-compatible verbs)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts (kubectl's persistent flags).
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// List or act on the requested objects across all namespaces.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply a configuration to a resource by file name or stdin (server-side apply).
    Apply(ApplyArgs),
    /// Create a resource from a file or from stdin.
    Create(ApplyArgs),
    /// Replace a resource by file name or stdin.
    Replace(ApplyArgs),
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a specific resource or group of resources.
    Describe(DescribeArgs),
    /// Delete resources by file names, stdin, resources and names, or by label selector.
    Delete(DeleteArgs),
    /// Print the logs for a container in a pod.
    Logs(LogsArgs),
    /// Set a new size for a deployment or replica set.
    Scale(ScaleArgs),
    /// Manage the rollout of a resource.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Mark node as unschedulable.
    Cordon(NodeArgs),
    /// Mark node as schedulable.
    Uncordon(NodeArgs),
    /// Drain node in preparation for maintenance.
    Drain(DrainArgs),
    /// Update the labels on a resource.
    Label(MetadataArgs),
    /// Update the annotations on a resource.
    Annotate(MetadataArgs),
    /// Edit a resource on the server with $EDITOR.
    Edit(EditArgs),
    /// Print the client and server version information.
    Version,
    /// Display cluster information.
    ClusterInfo,
    /// Print the supported API resources on the server.
    ApiResources(ApiResourcesArgs),
    /// Output shell completion code for the specified shell (bash, zsh or fish).
    Completion(CompletionArgs),
    /// Modify kubeconfig files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a local multi-node cluster on this machine (up, down, list, kill-node, ...).
    #[command(subcommand)]
    Cluster(crate::cmd::cluster::args::ClusterCommand),
}

/// `--dry-run` values kubectl accepts; only `none` and `server` reach the server here.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DryRun {
    #[default]
    None,
    Server,
}

#[derive(Args, Debug, Default)]
pub struct ApplyArgs {
    /// The files or directories that contain the configuration ("-" for stdin).
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Must be "none" or "server".
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "server")]
    pub dry_run: DryRun,
    /// Output format: only "name" is supported for apply.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Take ownership of fields another field manager owns (server-side apply conflicts).
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Args, Debug, Default)]
pub struct GetArgs {
    /// Resource types and names: `pods`, `pod web`, `pods,services`, `pod/web`, `all`.
    pub resources: Vec<String>,
    /// Output format: wide|yaml|json|name|jsonpath=TEMPLATE.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Selector (label query) to filter on, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on, e.g. `status.phase=Running`.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// After listing/getting the requested object, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// When printing, show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Read resources from these files instead of naming them.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Raw URI to request from the server, e.g. `/api/v1/namespaces` or `/healthz`.
    #[arg(long, conflicts_with_all = ["resources", "filenames", "watch", "output"])]
    pub raw: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct DescribeArgs {
    /// Resource type and optional names (`pods`, `pod web`, `pod/web`).
    pub resources: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct DeleteArgs {
    /// Resource type and names (`pod web db`, `pod/web`).
    pub resources: Vec<String>,
    /// Files or directories holding the resources to delete.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete all resources of the given types in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Period of time in seconds given to the resource to terminate gracefully (-1: its default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// Immediate deletion (same as --grace-period=0 when combined with it).
    #[arg(long)]
    pub now: bool,
    /// Wait for resources to be gone before returning.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long `--wait` waits for the objects to be gone, e.g. 60s or 2m (0s: no limit).
    #[arg(long, default_value = "0s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Treat "resource not found" as a successful delete.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Output format: only "name".
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct LogsArgs {
    /// The pod (or `pod/NAME`).
    pub pod: String,
    /// Print the logs of this container.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Specify if the logs should be streamed.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent log file to display (-1: all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
    /// Print the logs for the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Include timestamps on each line.
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Args, Debug, Default)]
pub struct ScaleArgs {
    /// `deployment NAME`, `deployment/NAME` or `rs/NAME`.
    pub resources: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long)]
    pub replicas: i32,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Show the status of the rollout.
    Status(RolloutStatusArgs),
    /// View rollout history.
    History(RolloutTarget),
    /// Undo a previous rollout.
    Undo(RolloutUndoArgs),
    /// Restart a resource (new rollout with a restartedAt annotation).
    Restart(RolloutTarget),
    /// Mark the provided resource as paused.
    Pause(RolloutTarget),
    /// Resume a paused resource.
    Resume(RolloutTarget),
}

#[derive(Args, Debug, Default)]
pub struct RolloutTarget {
    /// `deployment NAME` or `deployment/NAME`.
    pub resources: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct RolloutStatusArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// Watch the status of the rollout until it's done.
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
    /// How long to wait before ending the watch, e.g. 5m (0s: forever).
    #[arg(long, default_value = "0s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

#[derive(Args, Debug, Default)]
pub struct RolloutUndoArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// The revision to roll back to (0: the previous one).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

#[derive(Args, Debug, Default)]
pub struct NodeArgs {
    /// The node name.
    pub node: String,
}

#[derive(Args, Debug, Default)]
pub struct DrainArgs {
    /// The node name.
    pub node: String,
    /// Ignore DaemonSet-managed pods.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods not managed by a controller.
    #[arg(long)]
    pub force: bool,
    /// Continue even if there are pods using emptyDir.
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Grace period for each pod (-1: the pod's own).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// How long to wait for the evicted pods to be gone, e.g. 2m (0s: forever).
    #[arg(long, default_value = "0s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

#[derive(Args, Debug, Default)]
pub struct MetadataArgs {
    /// `TYPE NAME KEY=VAL ... KEY-` or `TYPE/NAME KEY=VAL ...`.
    pub args: Vec<String>,
    /// Overwrite existing values.
    #[arg(long)]
    pub overwrite: bool,
    /// Apply to every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct EditArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub resources: Vec<String>,
    /// Format to edit in: yaml or json.
    #[arg(short = 'o', long, default_value = "yaml")]
    pub output: String,
}

#[derive(Args, Debug, Default)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Limit to resources in this API group ("" for core).
    #[arg(long)]
    pub api_group: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish.
    pub shell: clap_complete::Shell,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Display merged kubeconfig settings (secrets redacted unless --raw).
    View(ConfigViewArgs),
    /// Display the current-context.
    CurrentContext,
    /// Set the current-context in a kubeconfig file.
    UseContext(UseContextArgs),
    /// Describe one or many contexts.
    GetContexts,
}

#[derive(Args, Debug, Default)]
pub struct ConfigViewArgs {
    /// Display raw byte data and sensitive data.
    #[arg(long)]
    pub raw: bool,
    /// Remove all information not used by current-context.
    #[arg(long)]
    pub minify: bool,
}

#[derive(Args, Debug, Default)]
pub struct UseContextArgs {
    /// The context to make current.
    pub context: String,
}

/// kubectl's `--timeout` is a Go duration (`60s`, `2m`); a bare number is read as seconds,
/// which kubectl refuses but older habits type.
fn parse_timeout(text: &str) -> Result<Duration, minik8s_api::duration::DurationError> {
    match text.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => minik8s_api::duration::parse_duration(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    // Regression: `--timeout` took bare seconds only, so kubectl's `--timeout 120s` (which the
    // demo script uses) was refused.
    #[test]
    fn timeout_flags_take_kubectl_durations() {
        let status = Cli::try_parse_from([
            "minictl",
            "rollout",
            "status",
            "deployment/web",
            "--timeout",
            "120s",
        ])
        .expect("rollout status --timeout 120s parses");
        let Command::Rollout(RolloutCommand::Status(args)) = status.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.timeout, Duration::from_secs(120));

        let delete = Cli::try_parse_from(["minictl", "delete", "-f", "x.yaml", "--timeout=1m30s"])
            .expect("delete --timeout=1m30s parses");
        let Command::Delete(args) = delete.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.timeout, Duration::from_secs(90));

        assert_eq!(parse_timeout("30").unwrap(), Duration::from_secs(30));
        assert!(parse_timeout("soon").is_err());
    }
}
