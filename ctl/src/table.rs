//! Tables the way kubectl prints them: a `text/tabwriter` with min width 6 and padding 3,
//! where the last column is never padded; and the server-side `meta.k8s.io/v1 Table`
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) turned into such rows.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// kubectl's `printers.GetNewTabWriter`: minwidth 6, tabwidth 4, padding 3, pad with spaces.
const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

/// Rows of text cells aligned like kubectl's tabwriter.
#[derive(Debug, Default, Clone)]
pub struct TextTable {
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(headers: &[&str]) -> Self {
        TextTable {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn headless() -> Self {
        TextTable::default()
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Column widths over all rows; the last cell of each row is excluded, as tabwriter
    /// only aligns tab-terminated cells.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                let w = (cell.chars().count() + PADDING).max(MIN_WIDTH);
                if widths.len() <= i {
                    widths.push(w);
                } else {
                    widths[i] = widths[i].max(w);
                }
            }
        }
        widths
    }

    pub fn render(&self) -> String {
        self.render_with(&self.widths())
    }

    /// Renders with given widths (used by `get -w` to keep later rows aligned to the first).
    pub fn render_with(&self, widths: &[usize]) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let w = widths
                        .get(i)
                        .copied()
                        .unwrap_or(MIN_WIDTH)
                        .max(cell.chars().count() + PADDING);
                    out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The subset of `meta.k8s.io/v1 Table` the printer reads.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    #[serde(default)]
    pub column_definitions: Vec<ColumnDefinition>,
    #[serde(default)]
    pub rows: Vec<TableRow>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ColumnDefinition {
    pub name: String,
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct TableRow {
    #[serde(default)]
    pub cells: Vec<Value>,
    /// PartialObjectMetadata (the default `includeObject`) or the full object.
    #[serde(default)]
    pub object: Option<Value>,
}

/// How to print a server table.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// `-o wide`: include columns with priority > 0.
    pub wide: bool,
    /// `-A`: a leading NAMESPACE column.
    pub with_namespace: bool,
    /// `--show-labels`: a trailing LABELS column.
    pub show_labels: bool,
    /// `kind.group/` prefix for the name column when several kinds are printed together.
    pub name_prefix: Option<String>,
}

impl Table {
    /// The header plus rows as text cells.
    pub fn to_text(&self, opts: &TableOptions) -> TextTable {
        let mut text = TextTable::new(&[]);
        text.rows.clear();
        text.row(self.header(opts));
        for row in &self.rows {
            text.row(self.cells(row, opts));
        }
        text
    }

    /// Only the rows (no header), for watch updates.
    pub fn rows_text(&self, opts: &TableOptions) -> Vec<Vec<String>> {
        self.rows.iter().map(|r| self.cells(r, opts)).collect()
    }

    fn visible(&self, opts: &TableOptions) -> impl Iterator<Item = (usize, &ColumnDefinition)> {
        let wide = opts.wide;
        self.column_definitions
            .iter()
            .enumerate()
            .filter(move |(_, c)| wide || c.priority == 0)
    }

    pub fn header(&self, opts: &TableOptions) -> Vec<String> {
        let mut h = Vec::new();
        if opts.with_namespace {
            h.push("NAMESPACE".to_string());
        }
        h.extend(self.visible(opts).map(|(_, c)| c.name.to_uppercase()));
        if opts.show_labels {
            h.push("LABELS".to_string());
        }
        h
    }

    pub fn cells(&self, row: &TableRow, opts: &TableOptions) -> Vec<String> {
        let meta = row.object.as_ref().and_then(|o| o.get("metadata"));
        let mut out = Vec::new();
        if opts.with_namespace {
            let ns = meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str);
            out.push(ns.unwrap_or("").to_string());
        }
        for (i, col) in self.visible(opts) {
            let mut text = row.cells.get(i).map(cell_text).unwrap_or_default();
            if let Some(prefix) = &opts.name_prefix {
                if col.format == "name" {
                    text = format!("{prefix}/{text}");
                }
            }
            out.push(text);
        }
        if opts.show_labels {
            out.push(labels_text(meta.and_then(|m| m.get("labels"))));
        }
        out
    }
}

/// A table cell as kubectl prints it: strings raw, integral numbers without a fraction,
/// null as `<none>`.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => "<none>".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && n.is_f64() => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `k=v,k2=v2` sorted by key (labels.Set.String), `<none>` when empty.
pub fn labels_text(labels: Option<&Value>) -> String {
    let map: BTreeMap<&str, &str> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if map.is_empty() {
        return "<none>".to_string();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods_table() -> Table {
        serde_json::from_value(json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Ready", "type": "string", "format": "", "priority": 0},
                {"name": "Restarts", "type": "integer", "format": "", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "priority": 0},
                {"name": "IP", "type": "string", "format": "", "priority": 1}
            ],
            "rows": [
                {"cells": ["web", "1/1", 0, "5s", "10.244.0.3"],
                 "object": {"metadata": {"name": "web", "namespace": "default", "labels": {"b": "2", "a": "1"}}}},
                {"cells": ["database-0", "0/1", 12, "3d", null],
                 "object": {"metadata": {"name": "database-0", "namespace": "prod"}}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn aligns_like_kubectl_tabwriter() {
        let out = pods_table().to_text(&TableOptions::default()).render();
        assert_eq!(
            out,
            "NAME         READY   RESTARTS   AGE\n\
             web          1/1     0          5s\n\
             database-0   0/1     12         3d\n"
        );
    }

    #[test]
    fn wide_namespace_and_labels_columns() {
        let opts = TableOptions {
            wide: true,
            with_namespace: true,
            show_labels: true,
            name_prefix: Some("pod".into()),
        };
        let out = pods_table().to_text(&opts).render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "NAMESPACE   NAME             READY   RESTARTS   AGE   IP           LABELS"
        );
        assert_eq!(
            lines[1],
            "default     pod/web          1/1     0          5s    10.244.0.3   a=1,b=2"
        );
        assert_eq!(
            lines[2],
            "prod        pod/database-0   0/1     12         3d    <none>       <none>"
        );
    }

    #[test]
    fn min_width_is_six() {
        let mut t = TextTable::new(&["A", "B"]);
        t.row(vec!["x".into(), "y".into()]);
        assert_eq!(t.render(), "A     B\nx     y\n");
    }

    #[test]
    fn cells_format_numbers_and_nulls() {
        assert_eq!(cell_text(&json!(3)), "3");
        assert_eq!(cell_text(&json!(3.0)), "3");
        assert_eq!(cell_text(&json!(0.5)), "0.5");
        assert_eq!(cell_text(&json!(null)), "<none>");
        assert_eq!(cell_text(&json!(true)), "true");
    }
}
