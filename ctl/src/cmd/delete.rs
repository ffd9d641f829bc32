//! `delete -f FILE`, `delete TYPE NAME...`, `-l`, `--all`: one `pod "x" deleted` line per
//! object, then (with `--wait`, the default) wait until each is gone, like kubectl.

use std::time::Duration;

use kube::api::{DeleteParams, ListParams, PropagationPolicy};

use crate::cli::DeleteArgs;
use crate::discovery::ResourceInfo;
use crate::error::{self, Error};
use crate::session::Session;
use crate::target::parse_targets;

/// How often `--wait` checks whether a deleted object is gone.
const WAIT_POLL: Duration = Duration::from_millis(200);

struct Victim {
    res: ResourceInfo,
    namespace: Option<String>,
    name: String,
}

pub async fn run(s: &Session, args: &DeleteArgs) -> Result<(), Error> {
    let mut failed = false;
    let victims = collect(s, args, &mut failed).await?;
    let mut dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    if args.grace_period >= 0 {
        dp.grace_period_seconds = Some(args.grace_period as u32);
    } else if args.now {
        dp.grace_period_seconds = Some(1);
    }
    let mut deleted = Vec::new();
    for v in victims {
        let api = s.api_in(&v.res, v.namespace.as_deref());
        match api.delete(&v.name, &dp).await {
            Ok(either) => {
                let uid = either.left().and_then(|o| o.metadata.uid);
                if args.output.as_deref() == Some("name") {
                    println!("{}/{}", v.res.type_name(), v.name);
                } else {
                    println!("{} \"{}\" deleted", v.res.type_name(), v.name);
                }
                deleted.push((v, uid));
            }
            Err(e) if error::is_not_found(&e) && args.ignore_not_found => {}
            Err(e) => {
                failed = true;
                eprintln!("{}", error::render_kube(&e));
            }
        }
    }
    if args.wait {
        let all_gone = async {
            for (v, uid) in &deleted {
                wait_gone(s, v, uid.as_deref()).await?;
            }
            Ok::<(), Error>(())
        };
        if args.timeout.is_zero() {
            all_gone.await?;
        } else {
            tokio::time::timeout(args.timeout, all_gone)
                .await
                .map_err(|_| Error::Failed("timed out waiting for the condition".into()))??;
        }
    }
    if failed {
        Err(Error::Reported)
    } else {
        Ok(())
    }
}

async fn collect(s: &Session, args: &DeleteArgs, failed: &mut bool) -> Result<Vec<Victim>, Error> {
    let mut out = Vec::new();
    if !args.filenames.is_empty() {
        let index = s.index().await?;
        for doc in crate::cmd::apply::read_documents(&args.filenames, args.recursive)? {
            let doc = match doc {
                Ok(d) => d,
                Err(e) => {
                    *failed = true;
                    eprintln!("error: {e}");
                    continue;
                }
            };
            let res = index.by_kind(doc.api_version(), doc.kind())?.clone();
            let namespace = crate::cmd::apply::target_namespace(s, &res, &doc)?;
            let name = doc.name().unwrap_or_default().to_string();
            out.push(Victim {
                res,
                namespace,
                name,
            });
        }
        return Ok(out);
    }
    let targets = parse_targets(&args.resources)?;
    if targets.is_empty() {
        return Err(Error::Usage(
            "You must provide one or more resources by argument or filename.".into(),
        ));
    }
    let sel = crate::cmd::get::select(s, &targets).await?;
    for (res, names) in sel.groups {
        if names.is_empty() {
            if !args.all && args.selector.is_none() {
                return Err(Error::Usage(
                    "resource(s) were provided, but no name was specified".into(),
                ));
            }
            let lp = ListParams {
                label_selector: args.selector.clone(),
                ..Default::default()
            };
            for o in s.api(&res).list(&lp).await?.items {
                out.push(Victim {
                    res: res.clone(),
                    namespace: o.metadata.namespace.clone(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                });
            }
            continue;
        }
        for name in names {
            let namespace = res.namespaced.then(|| s.namespace.clone());
            out.push(Victim {
                res: res.clone(),
                namespace,
                name,
            });
        }
    }
    if out.is_empty() {
        eprintln!("No resources found{}.", s.scope_phrase());
    }
    Ok(out)
}

/// Waits until the object is gone (or replaced by a new one with another uid).
async fn wait_gone(s: &Session, v: &Victim, uid: Option<&str>) -> Result<(), Error> {
    let api = s.api_in(&v.res, v.namespace.as_deref());
    loop {
        match api.get_opt(&v.name).await? {
            None => return Ok(()),
            Some(o) if uid.is_some() && o.metadata.uid.as_deref() != uid => return Ok(()),
            Some(_) => tokio::time::sleep(WAIT_POLL).await,
        }
    }
}
