//! `apply -f` (server-side apply, field manager `minictl`), `create -f` and `replace -f`.
//! Each object is reported on its own line in input order; a bad document is reported with
//! its file and index and the rest still go through (kubectl's behaviour), exit code 1.

use kube::api::{Patch, PatchParams, ValidationDirective};
use serde_json::Value;

use crate::cli::{ApplyArgs, DryRun};
use crate::cmd::write;
use crate::discovery::ResourceInfo;
use crate::error::{self, Error};
use crate::manifest::{self, Document, ManifestError};
use crate::session::Session;

/// Field manager for server-side apply and writes, so `managedFields` name us.
pub const FIELD_MANAGER: &str = "minictl";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Create,
    Replace,
}

impl Mode {
    fn verb(self) -> &'static str {
        match self {
            Mode::Apply => "apply",
            Mode::Create => "create",
            Mode::Replace => "replace",
        }
    }
    /// kubectl's "error when creating/replacing/applying ..." wording.
    fn gerund(self) -> &'static str {
        match self {
            Mode::Apply => "applying",
            Mode::Create => "creating",
            Mode::Replace => "replacing",
        }
    }
}

/// Reads every `-f` into documents (or per-document errors), in order.
pub fn read_documents(
    filenames: &[String],
    recursive: bool,
) -> Result<Vec<Result<Document, ManifestError>>, Error> {
    let sources = manifest::read_sources(filenames, recursive)?;
    Ok(sources.iter().flat_map(manifest::parse).collect())
}

pub async fn run(s: &Session, args: &ApplyArgs, mode: Mode) -> Result<(), Error> {
    let docs = read_documents(&args.filenames, args.recursive)?;
    if docs.is_empty() {
        return Err(ManifestError::Empty {
            verb: mode.verb().to_string(),
        }
        .into());
    }
    // Discover first: an unreachable server is one error, not one per document.
    s.index().await?;
    let mut failed = false;
    for doc in docs {
        let outcome = match doc {
            Ok(doc) => apply_one(s, args, mode, &doc).await,
            Err(e) => Err(Error::from(e)),
        };
        if let Err(e) = outcome {
            failed = true;
            eprintln!("{}", error::render(&e));
        }
    }
    if failed {
        Err(Error::Reported)
    } else {
        Ok(())
    }
}

/// The namespace an object goes to: its own, else the session's; `-n` must agree with it.
pub fn target_namespace(
    s: &Session,
    res: &ResourceInfo,
    doc: &Document,
) -> Result<Option<String>, Error> {
    if !res.namespaced {
        return Ok(None);
    }
    match doc.namespace() {
        Some(ns) if s.explicit_namespace && ns != s.namespace => Err(Error::Failed(format!(
            "{}: the namespace from the provided object \"{ns}\" does not match the namespace \"{}\". You must pass '--namespace={ns}' to perform this operation.",
            doc.origin, s.namespace
        ))),
        Some(ns) => Ok(Some(ns.to_string())),
        None => Ok(Some(s.namespace.clone())),
    }
}

async fn apply_one(s: &Session, args: &ApplyArgs, mode: Mode, doc: &Document) -> Result<(), Error> {
    let index = s.index().await?;
    let res = index
        .by_kind(doc.api_version(), doc.kind())
        .map_err(|e| Error::Failed(format!("{}: {e}", doc.origin.with_line())))?
        .clone();
    let generate = doc.object["metadata"]["generateName"].as_str().is_some();
    let name = match doc.name() {
        Some(n) => n.to_string(),
        None if mode == Mode::Create && generate => String::new(),
        None => {
            return Err(Error::Failed(format!(
                "{}: {} has no metadata.name: resource name may not be empty",
                doc.origin.with_line(),
                doc.kind()
            )))
        }
    };
    let ns = target_namespace(s, &res, doc)?;
    let api = s.api_in(&res, ns.as_deref());
    let dry = args.dry_run == DryRun::Server;
    let mut object = doc.object.clone();
    if let (Some(ns), Some(meta)) = (&ns, object["metadata"].as_object_mut()) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    let server_err = |e: kube::Error| -> Error {
        match e {
            kube::Error::Api(mut st) => {
                st.message = format!(
                    "error when {} {}: {}",
                    mode.gerund(),
                    doc.origin,
                    st.message
                );
                Error::Kube(kube::Error::Api(st))
            }
            other => Error::Kube(other),
        }
    };
    let verdict = match mode {
        Mode::Apply => {
            let before = api.get_opt(&name).await.map_err(server_err)?;
            let mut pp = PatchParams::apply(FIELD_MANAGER);
            pp.force = args.force_conflicts;
            pp.dry_run = dry;
            pp.field_validation = Some(ValidationDirective::Strict);
            let after = api
                .patch(&name, &pp, &Patch::Apply(&object))
                .await
                .map_err(server_err)?;
            match before {
                None => "created",
                Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                    "unchanged"
                }
                Some(_) => "configured",
            }
        }
        Mode::Create => {
            let created = write::create(s, &api, &object, dry)
                .await
                .map_err(server_err)?;
            let created_name = created["metadata"]["name"]
                .as_str()
                .unwrap_or(&name)
                .to_string();
            return report(&res, &created_name, "created", args, dry);
        }
        Mode::Replace => {
            write::replace(s, &api, &name, &object, dry)
                .await
                .map_err(server_err)?;
            "replaced"
        }
    };
    report(&res, &name, verdict, args, dry)
}

fn report(
    res: &ResourceInfo,
    name: &str,
    verdict: &str,
    args: &ApplyArgs,
    dry: bool,
) -> Result<(), Error> {
    if args.output.as_deref() == Some("name") {
        println!("{}/{name}", res.type_name());
    } else {
        let suffix = if dry { " (server dry run)" } else { "" };
        println!("{}/{name} {verdict}{suffix}", res.type_name());
    }
    Ok(())
}
