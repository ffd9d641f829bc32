//! `get`: server-side tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) for the
//! default and wide output, objects for yaml/json/name/jsonpath, and `-w` which keeps
//! printing rows as the watch reports changes.

use kube::api::ListParams;
use serde_json::Value;

use crate::cli::GetArgs;
use crate::discovery::ResourceInfo;
use crate::error::{self, Error};
use crate::output::{self, OutputFormat};
use crate::session::Session;
use crate::table::{Table, TableOptions};
use crate::target::{parse_targets, Target};

/// kubectl's Accept header for tables, falling back to plain JSON for servers without them.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json";

/// The resources to print, each with the names asked for (empty: list them all).
pub struct Selection {
    pub groups: Vec<(ResourceInfo, Vec<String>)>,
    /// More than one type (or a category): names get a `type/` prefix, like kubectl.
    pub multi: bool,
}

pub async fn select(s: &Session, targets: &[Target]) -> Result<Selection, Error> {
    let index = s.index().await?;
    let mut groups: Vec<(ResourceInfo, Vec<String>)> = Vec::new();
    let mut category = false;
    for t in targets {
        let members = index.category(&t.resource);
        if !members.is_empty() && index.resolve(&t.resource).is_err() {
            category = true;
            groups.extend(members.into_iter().map(|r| (r.clone(), t.names.clone())));
        } else {
            groups.push((index.resolve(&t.resource)?.clone(), t.names.clone()));
        }
    }
    let multi = category || groups.len() > 1;
    Ok(Selection { groups, multi })
}

/// Targets from `-f` files: one per object, by kind.
async fn file_targets(s: &Session, args: &GetArgs) -> Result<Vec<Target>, Error> {
    let docs = crate::cmd::apply::read_documents(&args.filenames, false)?;
    let index = s.index().await?;
    let mut out = Vec::new();
    for d in docs {
        let d = d?;
        let res = index.by_kind(d.api_version(), d.kind())?;
        out.push(Target {
            resource: res.plural_name(),
            names: d.name().map(|n| vec![n.to_string()]).unwrap_or_default(),
        });
    }
    Ok(out)
}

pub async fn run(s: &Session, args: &GetArgs) -> Result<(), Error> {
    if let Some(path) = &args.raw {
        return raw(s, path).await;
    }
    let format = OutputFormat::parse(args.output.as_deref())?;
    let targets = if args.filenames.is_empty() {
        parse_targets(&args.resources)?
    } else {
        file_targets(s, args).await?
    };
    if targets.is_empty() {
        return Err(Error::Usage(
            "You must specify the type of resource to get. Use \"minictl api-resources\" for a complete list of supported resources.".into(),
        ));
    }
    let sel = select(s, &targets).await?;
    if args.watch {
        let [(res, names)] = sel.groups.as_slice() else {
            return Err(Error::Usage("watch is only supported on individual resources and resource collections, but 2 resources were found".into()));
        };
        return crate::cmd::watch::run(s, args, &format, res, names).await;
    }
    if format.is_table() {
        print_tables(s, args, &format, &sel).await
    } else {
        print_objects(s, args, &format, &sel).await
    }
}

fn list_params(args: &GetArgs) -> ListParams {
    ListParams {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..Default::default()
    }
}

/// Percent-encodes a query value (selectors hold `=`, `,`, `!`, spaces).
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GETs `path` as a Table.
/// `get --raw PATH`: the server's answer printed as it came, as kubectl does (a Status
/// error is reported like any other server error).
async fn raw(s: &Session, path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::Usage(format!(
            "--raw must be an absolute path starting with '/', got {path:?}"
        )));
    }
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    let body = s.client.request_text(req).await?;
    print!("{body}");
    if !body.ends_with('\n') {
        println!();
    }
    Ok(())
}

pub async fn get_table(s: &Session, path: &str) -> Result<Table, kube::Error> {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, TABLE_ACCEPT)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    let v: Value = s.client.request(req).await?;
    if v["kind"] == "Table" {
        serde_json::from_value(v).map_err(kube::Error::SerdeError)
    } else {
        Ok(fallback_table(&v))
    }
}

/// A NAME/AGE table for servers (or kinds) without server-side tables.
fn fallback_table(v: &Value) -> Table {
    let items: Vec<Value> = match v["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![v.clone()],
    };
    let rows = items
        .into_iter()
        .map(|o| {
            let name = o["metadata"]["name"].clone();
            let age = crate::describe::format::age_of(o["metadata"]["creationTimestamp"].as_str());
            serde_json::json!({"cells": [name, age], "object": {"metadata": o["metadata"].clone()}})
        })
        .collect::<Vec<_>>();
    serde_json::from_value(serde_json::json!({
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "priority": 0}
        ],
        "rows": rows,
        "metadata": v["metadata"].clone(),
    }))
    .expect("a well-formed table")
}

/// The table for one resource: the list (with selectors) or the named objects.
pub(crate) async fn fetch_table(
    s: &Session,
    args: &GetArgs,
    res: &ResourceInfo,
    names: &[String],
    failed: &mut bool,
) -> Result<Table, Error> {
    let url = s.api(res).resource_url().to_string();
    if names.is_empty() {
        let mut q = Vec::new();
        if let Some(l) = &args.selector {
            q.push(format!("labelSelector={}", encode(l)));
        }
        if let Some(f) = &args.field_selector {
            q.push(format!("fieldSelector={}", encode(f)));
        }
        let path = if q.is_empty() {
            url
        } else {
            format!("{url}?{}", q.join("&"))
        };
        return Ok(get_table(s, &path).await?);
    }
    let mut table: Option<Table> = None;
    for n in names {
        match get_table(s, &format!("{url}/{n}")).await {
            Ok(t) => match &mut table {
                Some(acc) => acc.rows.extend(t.rows),
                None => table = Some(t),
            },
            Err(e) => {
                *failed = true;
                eprintln!("{}", error::render_kube(&e));
            }
        }
    }
    Ok(table.unwrap_or_default())
}

pub(crate) fn table_options(
    s: &Session,
    args: &GetArgs,
    format: &OutputFormat,
    res: &ResourceInfo,
    multi: bool,
) -> TableOptions {
    TableOptions {
        wide: matches!(format, OutputFormat::Wide),
        with_namespace: s.all_namespaces && res.namespaced,
        show_labels: args.show_labels,
        name_prefix: multi.then(|| res.type_name()),
    }
}

async fn print_tables(
    s: &Session,
    args: &GetArgs,
    format: &OutputFormat,
    sel: &Selection,
) -> Result<(), Error> {
    let mut failed = false;
    let mut printed = false;
    for (res, names) in &sel.groups {
        let table = match fetch_table(s, args, res, names, &mut failed).await {
            Ok(t) => t,
            // `get all` skips kinds the user may not list, like kubectl does.
            Err(e) if sel.multi && names.is_empty() => {
                tracing::debug!(resource = %res.plural, "skipping: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        if table.rows.is_empty() {
            continue;
        }
        if printed {
            println!();
        }
        printed = true;
        let opts = table_options(s, args, format, res, sel.multi);
        print!("{}", table.to_text(&opts).render());
    }
    finish(s, printed, failed)
}

fn finish(s: &Session, printed: bool, failed: bool) -> Result<(), Error> {
    if failed {
        return Err(Error::Reported);
    }
    if !printed {
        eprintln!("No resources found{}.", s.scope_phrase());
    }
    Ok(())
}

async fn print_objects(
    s: &Session,
    args: &GetArgs,
    format: &OutputFormat,
    sel: &Selection,
) -> Result<(), Error> {
    let mut failed = false;
    let mut items = Vec::new();
    for (res, names) in &sel.groups {
        let api = s.api(res);
        if names.is_empty() {
            let list = api.list(&list_params(args)).await?;
            for o in list.items {
                items.push((
                    res,
                    output::with_type(res, serde_json::to_value(o).unwrap_or_default()),
                ));
            }
            continue;
        }
        for n in names {
            match api.get(n).await {
                Ok(o) => items.push((
                    res,
                    output::with_type(res, serde_json::to_value(o).unwrap_or_default()),
                )),
                Err(e) => {
                    failed = true;
                    eprintln!("{}", error::render_kube(&e));
                }
            }
        }
    }
    let single = !sel.multi && sel.groups.len() == 1 && sel.groups[0].1.len() == 1;
    match format {
        OutputFormat::Name => {
            for (res, o) in &items {
                println!("{}", output::name_of(res, o));
            }
        }
        _ if single && items.len() == 1 => print!("{}", output::render_value(format, &items[0].1)),
        _ if single => {}
        _ => {
            let list = output::list_of(items.iter().map(|(_, o)| o.clone()).collect());
            print!("{}", output::render_value(format, &list));
        }
    }
    if failed {
        return Err(Error::Reported);
    }
    if items.is_empty() && !single && matches!(format, OutputFormat::Name) {
        eprintln!("No resources found{}.", s.scope_phrase());
    }
    Ok(())
}
