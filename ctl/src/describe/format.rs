//! The text machinery of `describe`: Go's `text/tabwriter` algorithm (kubectl describes
//! through a tabwriter with padding 2), indent levels, label lists and ages.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Aligns tab-separated cells like Go's `text/tabwriter`: a column block is a run of
/// consecutive lines that have a tab-terminated cell in that column; the text after a
/// line's last tab is never padded.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        (minwidth, padding),
        &mut out,
    );
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    (minwidth, padding): (usize, usize),
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, (minwidth, padding), out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let w = widths.get(j).copied().unwrap_or(0);
                let n = cell.chars().count();
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
            }
        }
        out.push('\n');
    }
}

/// kubectl's `PrefixWriter`: each level indents by two spaces.
#[derive(Default)]
pub struct Out {
    buf: String,
}

impl Out {
    pub fn line(&mut self, level: usize, text: impl AsRef<str>) {
        for _ in 0..level {
            self.buf.push_str("  ");
        }
        self.buf.push_str(text.as_ref());
        self.buf.push('\n');
    }

    /// `Title:\tk=v` then one `\tk=v` line per further entry, `<none>` when empty
    /// (kubectl's printLabelsMultiline).
    pub fn map(&mut self, level: usize, title: &str, map: Option<&BTreeMap<String, String>>) {
        self.pairs(level, title, map, "=");
    }

    /// Like `map`, with `key: value` pairs (kubectl's printAnnotationsMultiline).
    pub fn annotations(&mut self, level: usize, map: Option<&BTreeMap<String, String>>) {
        self.pairs(level, "Annotations", map, ": ");
    }

    fn pairs(
        &mut self,
        level: usize,
        title: &str,
        map: Option<&BTreeMap<String, String>>,
        sep: &str,
    ) {
        let entries: Vec<_> = map.into_iter().flatten().collect();
        if entries.is_empty() {
            self.line(level, format!("{title}:\t<none>"));
            return;
        }
        for (i, (k, v)) in entries.iter().enumerate() {
            if i == 0 {
                self.line(level, format!("{title}:\t{k}{sep}{v}"));
            } else {
                self.line(level, format!("\t{k}{sep}{v}"));
            }
        }
    }

    /// Aligned output (tabwriter with padding 2, as kubectl's describers use).
    pub fn finish(self) -> String {
        tabwrite(&self.buf, 0, 2)
    }
}

/// `<none>` for empty strings, kubectl-style.
pub fn or_none(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".to_string(),
    }
}

/// RFC 1123 with numeric zone, as kubectl prints `Start Time` and `CreationTimestamp`.
pub fn timestamp(t: Option<&Time>) -> String {
    match t {
        Some(t) => t.0.strftime("%a, %d %b %Y %H:%M:%S %z").to_string(),
        None => "<unset>".to_string(),
    }
}

pub use minik8s_api::duration::human_duration;

pub fn since(t: &Timestamp) -> i64 {
    Timestamp::now().duration_since(*t).as_secs()
}

/// Age of an RFC 3339 timestamp string, `<unknown>` if absent.
pub fn age_of(ts: Option<&str>) -> String {
    ts.and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| human_duration(since(&t)))
        .unwrap_or_else(|| "<unknown>".to_string())
}

pub fn age(t: Option<&Time>) -> String {
    t.map(|t| human_duration(since(&t.0)))
        .unwrap_or_else(|| "<unknown>".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_blocks_like_go() {
        let text = "Name:\tweb\nNamespace:\tdefault\nContainers:\n  c:\n    Image:\tbusybox\n    Restart Count:\t0\n";
        assert_eq!(
            tabwrite(text, 0, 2),
            "Name:       web\nNamespace:  default\nContainers:\n  c:\n    Image:          busybox\n    Restart Count:  0\n"
        );
    }

    #[test]
    fn labels_multiline() {
        let mut o = Out::default();
        let m: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        o.line(0, "Name:\tx");
        o.map(0, "Labels", Some(&m));
        o.map(0, "Annotations", None);
        assert_eq!(
            o.finish(),
            "Name:         x\nLabels:       a=1\n              b=2\nAnnotations:  <none>\n"
        );
    }
}
