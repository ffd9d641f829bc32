//! The query and path parameters of kube-apiserver's operations (names and meanings from
//! k8s.io/apimachinery `metav1.ListOptions`, `CreateOptions`, `PatchOptions`, `DeleteOptions`
//! and `core/v1.PodLogOptions`), in OpenAPI v3 form.

use serde_json::{json, Value};

/// `{"name", "in", "description", "schema"}`, as kube-apiserver writes its v3 parameters.
fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": { "type": ty, "uniqueItems": true },
    });
    if location == "path" {
        p["required"] = Value::Bool(true);
    }
    p
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    param(name, "query", ty, description)
}

pub fn path_name(kind: &str) -> Value {
    param("name", "path", "string", &format!("name of the {kind}"))
}

pub fn path_namespace() -> Value {
    param(
        "namespace",
        "path",
        "string",
        "object name and auth scope, such as for teams and projects",
    )
}

pub fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: All.",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    )
}

/// The parameter kubectl looks for (cli-runtime `QueryParamVerifierV3`) to decide that the
/// server validates fields itself; it must be an operation parameter `in: query`.
pub fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
    )
}

/// Parameters of create (POST) and replace (PUT).
pub fn write() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

/// Parameters of patch.
pub fn patch() -> Vec<Value> {
    let force = query(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    );
    vec![dry_run(), field_manager(), field_validation(), force]
}

fn selector_params() -> Vec<Value> {
    vec![
        query("continue", "string", "The continue option should be set when retrieving more results from the server."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    ]
}

/// Parameters of list and watch.
pub fn list() -> Vec<Value> {
    let mut out = vec![query(
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    )];
    out.extend(selector_params());
    out.push(query(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    ));
    // Alphabetical, as kube-apiserver orders them.
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

fn delete_options() -> Vec<Value> {
    vec![
        dry_run(),
        query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error.",
        ),
        query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7."),
        query("propagationPolicy", "string", "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
    ]
}

/// Parameters of delete.
pub fn delete() -> Vec<Value> {
    delete_options()
}

/// Parameters of deletecollection: delete options plus list options.
pub fn delete_collection() -> Vec<Value> {
    let mut out = delete_options();
    out.extend(selector_params());
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

/// Parameters of `pods/log` (core/v1 `PodLogOptions`).
pub fn log() -> Vec<Value> {
    vec![
        query("container", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
        query("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
        query("insecureSkipTLSVerifyBackend", "boolean", "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to."),
        query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the log output."),
        query("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
        query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
        query("stream", "string", "Specify which container log stream to return to the client. Acceptable values are \"All\", \"Stdout\" and \"Stderr\"."),
        query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
        query("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false."),
    ]
}
