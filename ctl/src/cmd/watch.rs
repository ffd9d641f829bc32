//! `get -w`: the current table, then one row per change until interrupted. Rows come from
//! a table GET of the changed object (a deleted one prints its last known row), aligned to
//! the first table's columns as kubectl's watch output is.

use std::collections::HashMap;
use std::io::Write;

use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, WatchEvent, WatchParams};
use serde_json::Value;

use crate::cli::GetArgs;
use crate::cmd::get::{fetch_table, get_table, table_options};
use crate::discovery::ResourceInfo;
use crate::error::Error;
use crate::output::{self, OutputFormat};
use crate::session::Session;
use crate::table::{Table, TableOptions, TextTable};

/// Prints watch rows under the header of the initial table.
struct RowPrinter {
    header: Vec<String>,
    widths: Vec<usize>,
    opts: TableOptions,
    header_pending: bool,
    /// Last row printed per `namespace/name`, for deletions.
    last: HashMap<String, Vec<String>>,
}

impl RowPrinter {
    fn new(table: &Table, opts: TableOptions) -> Self {
        let text = table.to_text(&opts);
        let last = table
            .rows
            .iter()
            .filter_map(|r| Some((row_key(r.object.as_ref()?), table.cells(r, &opts))))
            .collect();
        RowPrinter {
            header: table.header(&opts),
            widths: text.widths(),
            header_pending: table.rows.is_empty(),
            opts,
            last,
        }
    }

    fn print(&mut self, key: String, row: Vec<String>) {
        let mut text = TextTable::headless();
        if self.header_pending {
            self.header_pending = false;
            text.row(self.header.clone());
        }
        self.last.insert(key, row.clone());
        text.row(row);
        print!("{}", text.render_with(&self.widths));
        let _ = std::io::stdout().flush();
    }
}

fn row_key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

pub async fn run(
    s: &Session,
    args: &GetArgs,
    format: &OutputFormat,
    res: &ResourceInfo,
    names: &[String],
) -> Result<(), Error> {
    let mut field_selector = args.field_selector.clone();
    if let [name] = names {
        let by_name = format!("metadata.name={name}");
        field_selector = Some(match field_selector {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        });
    }
    let args = GetArgs {
        field_selector,
        selector: args.selector.clone(),
        show_labels: args.show_labels,
        ..Default::default()
    };
    let mut failed = false;
    let table = fetch_table(s, &args, res, &[], &mut failed).await?;
    let mut rv = table
        .metadata
        .as_ref()
        .and_then(|m| m["resourceVersion"].as_str())
        .unwrap_or("0")
        .to_string();
    let mut printer = RowPrinter::new(&table, table_options(s, &args, format, res, false));
    if table.rows.is_empty() {
        eprintln!("No resources found{}.", s.scope_phrase());
    } else if format.is_table() {
        print!("{}", table.to_text(&printer.opts).render());
    }
    let api = s.api(res);
    let wp = WatchParams {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..Default::default()
    };
    // The server ends a watch now and then; resume from the last resourceVersion seen.
    loop {
        let mut stream = api.watch(&wp, &rv).await?.boxed();
        while let Some(ev) = stream.try_next().await? {
            let (obj, deleted) = match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
                WatchEvent::Deleted(o) => (o, true),
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                // Expired: start over from the current state.
                WatchEvent::Error(e) if e.code == 410 => {
                    rv = "0".to_string();
                    break;
                }
                WatchEvent::Error(e) => return Err(kube::Error::Api(e).into()),
            };
            rv = obj.metadata.resource_version.clone().unwrap_or(rv);
            show(s, res, format, &mut printer, &obj, deleted).await;
        }
    }
}

/// Prints one event: the object in a non-table format, or its table row.
async fn show(
    s: &Session,
    res: &ResourceInfo,
    format: &OutputFormat,
    printer: &mut RowPrinter,
    obj: &DynamicObject,
    deleted: bool,
) {
    let value = output::with_type(res, serde_json::to_value(obj).unwrap_or_default());
    if !format.is_table() {
        print!("{}", output::render_value(format, &value));
        return;
    }
    let key = row_key(&value);
    let mut row = None;
    if !deleted {
        let url = s
            .api_in(res, obj.metadata.namespace.as_deref())
            .resource_url()
            .to_string();
        let name = obj.metadata.name.clone().unwrap_or_default();
        if let Ok(t) = get_table(s, &format!("{url}/{name}")).await {
            row = t.rows.first().map(|r| t.cells(r, &printer.opts));
        }
    }
    if let Some(row) = row.or_else(|| printer.last.get(&key).cloned()) {
        printer.print(key, row);
    }
}
