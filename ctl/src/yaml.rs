//! YAML the way kubectl writes it (go-yaml v2 through sigs.k8s.io/yaml): block style, two
//! spaces per level, sequences at their key's indentation, strings double-quoted only when
//! a YAML 1.1 reader would take them for something else (`"8080"`, `"true"`, timestamps),
//! multi-line strings as literal blocks (`|`, `|-`).

use serde_json::Value;

/// The document for a JSON value.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, false, &mut out),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A mapping at `indent`; `inline` when the first key continues a `- ` line.
fn map(m: &serde_json::Map<String, Value>, indent: usize, inline: bool, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline {
            pad(indent, out);
        }
        out.push_str(&string(k, indent));
        out.push(':');
        value_after_key(v, indent, out);
    }
}

fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(m, indent + 2, false, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(a, indent, false, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn seq(a: &[Value], indent: usize, inline: bool, out: &mut String) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !inline {
            pad(indent, out);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => map(m, indent + 2, true, out),
            Value::Array(inner) if !inner.is_empty() => seq(inner, indent + 2, true, out),
            other => {
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// A scalar (or empty collection); `block_indent` is where a literal block's lines go.
fn scalar(v: &Value, block_indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, block_indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn string(s: &str, block_indent: usize) -> String {
    if s.contains('\n') && literal_ok(s) {
        return literal(s, block_indent);
    }
    if needs_quotes(s) {
        quoted(s)
    } else {
        s.to_string()
    }
}

/// Literal blocks can't carry trailing spaces, tabs or a leading space faithfully.
fn literal_ok(s: &str) -> bool {
    !s.starts_with(' ')
        && !s.contains('\t')
        && !s.contains('\r')
        && s.lines().all(|l| !l.ends_with(' '))
}

fn literal(s: &str, indent: usize) -> String {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let mut out = String::from(chomp);
    for line in s.trim_end_matches('\n').split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', indent));
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    out
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a plain scalar would read back as something other than this string.
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.starts_with(' ') || s.ends_with(' ') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    const SPECIAL: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", "-.inf", "+.inf",
        ".nan",
    ];
    if SPECIAL.contains(&lower.as_str()) || looks_numeric(s) || looks_timestamp(s) {
        return true;
    }
    let first = s.chars().next().expect("non-empty");
    let second = s.chars().nth(1);
    if "[]{},#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ') {
        return true;
    }
    s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| c.is_control())
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']).replace('_', "");
    if t.is_empty() {
        return false;
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return !oct.is_empty() && oct.chars().all(|c| c.is_digit(8));
    }
    t.parse::<f64>().is_ok()
        && t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
}

/// YAML 1.1 timestamps: `2001-12-14`, `2001-12-14t21:59:43.10-05:00`, ...
fn looks_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5].is_ascii_digit()
        && s[5..]
            .chars()
            .take_while(|c| *c != 'T' && *c != 't' && *c != ' ')
            .all(|c| c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_like_kubectl() {
        let v = json!({
            "apiVersion": "v1",
            "data": {"index.html": "<h1>Hi</h1>\n", "port": "8080", "flag": "true", "empty": ""},
            "metadata": {"creationTimestamp": "2026-11-22T21:52:23Z", "labels": {}, "name": "web",
                         "resourceVersion": "8"},
            "spec": {"containers": [{"command": ["httpd", "-f", "-p", "8080"], "name": "c",
                                      "ports": [{"containerPort": 8080}]}],
                     "list": [["a", "b"]], "none": null, "tolerations": []}
        });
        assert_eq!(
            to_string(&v),
            "apiVersion: v1\n\
data:\n  index.html: |\n    <h1>Hi</h1>\n  port: \"8080\"\n  flag: \"true\"\n  empty: \"\"\n\
metadata:\n  creationTimestamp: \"2026-11-22T21:52:23Z\"\n  labels: {}\n  name: web\n  resourceVersion: \"8\"\n\
spec:\n  containers:\n  - command:\n    - httpd\n    - -f\n    - -p\n    - \"8080\"\n    name: c\n    ports:\n    - containerPort: 8080\n  \
list:\n  - - a\n    - b\n  none: null\n  tolerations: []\n"
        );
    }

    #[test]
    fn quoting_rules() {
        for s in [
            "yes",
            "No",
            "1.5",
            "0x1F",
            "-",
            "- a",
            "a: b",
            "a #b",
            "{x}",
            "*x",
            "2024-01-01",
            " x",
            "x:",
        ] {
            assert!(needs_quotes(s), "{s:?} must be quoted");
        }
        for s in [
            "web",
            "-f",
            "app.kubernetes.io/name",
            "10.96.0.1",
            "busybox:1.36",
            "a-b",
            "http://x/y",
            "25%",
            "50m",
        ] {
            assert!(!needs_quotes(s), "{s:?} stays plain");
        }
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn literal_chomping_and_round_trip() {
        let v = json!({"a": "one\ntwo", "b": "x\n\n", "c": "trailing \nspace"});
        let text = to_string(&v);
        assert_eq!(
            text,
            "a: |-\n  one\n  two\nb: |+\n  x\n\nc: \"trailing \\nspace\"\n"
        );
        let back: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
