//! The part of kubectl's JSONPath templates people use: `{.a.b}`, `{.items[*].metadata.name}`,
//! `{.items[0]}`, `{.metadata.labels['app.kubernetes.io/name']}`,
//! `{range .items[*]}...{end}` and string literals such as `{"\n"}`.
//! Missing keys print nothing (kubectl's `--allow-missing-template-keys=true` default);
//! several results of one expression are joined with spaces.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    #[error("error parsing jsonpath {template:?}: {reason}")]
    Parse { template: String, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Expr(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template, ready to run against many objects.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(template: &str) -> Result<Self, JsonPathError> {
        let err = |reason: &str| JsonPathError::Parse {
            template: template.to_string(),
            reason: reason.to_string(),
        };
        // kubectl accepts a bare path (`.items[*]`) as if it were braced.
        let owned;
        let text = if template.contains('{') {
            template
        } else {
            owned = format!("{{{template}}}");
            &owned
        };
        // A stack of open `range` bodies; the bottom is the template itself.
        let mut stack: Vec<(Option<Vec<Step>>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push_text(&mut stack, rest);
                break;
            };
            push_text(&mut stack, &rest[..open]);
            let close = find_close(&rest[open + 1..]).ok_or_else(|| err("unclosed action"))?;
            let action = rest[open + 1..open + 1 + close].trim();
            rest = &rest[open + 2 + close..];
            if let Some(path) = action.strip_prefix("range ") {
                stack.push((
                    Some(parse_path(path.trim()).map_err(|r| err(&r))?),
                    Vec::new(),
                ));
            } else if action == "end" {
                if stack.len() < 2 {
                    return Err(err("{end} without {range}"));
                }
                let (path, body) = stack.pop().expect("checked length");
                let node = Node::Range(path.expect("range frame"), body);
                stack.last_mut().expect("bottom frame").1.push(node);
            } else if action.starts_with('"') || action.starts_with('\'') {
                let lit = unquote(action).ok_or_else(|| err("bad string literal"))?;
                push_text(&mut stack, &lit);
            } else {
                let steps = parse_path(action).map_err(|r| err(&r))?;
                stack
                    .last_mut()
                    .expect("bottom frame")
                    .1
                    .push(Node::Expr(steps));
            }
        }
        if stack.len() != 1 {
            return Err(err("{range} without {end}"));
        }
        Ok(Template {
            nodes: stack.pop().expect("bottom frame").1,
        })
    }

    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out);
        out
    }
}

fn push_text(stack: &mut [(Option<Vec<Step>>, Vec<Node>)], text: &str) {
    if !text.is_empty() {
        stack
            .last_mut()
            .expect("bottom frame")
            .1
            .push(Node::Text(text.to_string()));
    }
}

/// The index of the `}` closing an action, skipping quoted text.
fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Some(i),
            None => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            other => out.push(other),
        }
    }
    Some(out)
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut rest = path.trim_start_matches(['$', '@']);
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            // A name runs to the next unescaped `.` or `[`; `\.` is a literal dot
            // (`{.data.index\.html}`), as in kubectl.
            let mut name = String::new();
            let mut end = r.len();
            let mut chars = r.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' if matches!(chars.peek(), Some((_, '.'))) => {
                        name.push('.');
                        chars.next();
                    }
                    '.' | '[' => {
                        end = i;
                        break;
                    }
                    c => name.push(c),
                }
            }
            if name == "*" {
                steps.push(Step::Wildcard);
            } else if !name.is_empty() {
                steps.push(Step::Field(name));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or("unclosed [")?;
            let inner = r[..end].trim();
            steps.push(if inner == "*" {
                Step::Wildcard
            } else if let Some(key) = unquote(inner) {
                Step::Field(key)
            } else {
                Step::Index(inner.parse().map_err(|_| format!("bad index [{inner}]"))?)
            });
            rest = &r[end + 1..];
        } else {
            return Err(format!("unexpected {rest:?}"));
        }
    }
    Ok(steps)
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match (step, v) {
                (Step::Field(f), Value::Object(m)) => next.extend(m.get(f)),
                (Step::Wildcard, Value::Array(a)) => next.extend(a.iter()),
                (Step::Wildcard, Value::Object(m)) => next.extend(m.values()),
                (Step::Index(i), Value::Array(a)) => {
                    let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                    next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                }
                _ => {}
            }
        }
        cur = next;
    }
    cur
}

fn render_nodes(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr(steps) => {
                let parts: Vec<String> = eval(steps, data).into_iter().map(value_text).collect();
                out.push_str(&parts.join(" "));
            }
            Node::Range(steps, body) => {
                for v in eval(steps, data) {
                    render_nodes(body, v, out);
                }
            }
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}}, "spec": {"replicas": 2}},
            {"metadata": {"name": "b"}, "spec": {"replicas": 3}}
        ]})
    }

    fn run(t: &str) -> String {
        Template::parse(t).unwrap().render(&list())
    }

    #[test]
    fn fields_wildcards_and_indexes() {
        assert_eq!(run("{.items[*].metadata.name}"), "a b");
        assert_eq!(run("{.items[0].spec.replicas}"), "2");
        assert_eq!(run("{.items[-1].metadata.name}"), "b");
        assert_eq!(
            run("{.items[0].metadata.labels['app.kubernetes.io/name']}"),
            "web"
        );
        assert_eq!(run("{.kind}"), "List");
        assert_eq!(
            run("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}"),
            "web"
        );
        assert_eq!(run(".kind"), "List");
        assert_eq!(run("{.missing.key}"), "");
        assert_eq!(run("{.items[1].metadata}"), "{\"name\":\"b\"}");
    }

    #[test]
    fn range_and_literals() {
        assert_eq!(
            run("{range .items[*]}{.metadata.name}{\"\\t\"}{.spec.replicas}{\"\\n\"}{end}"),
            "a\t2\nb\t3\n"
        );
        assert_eq!(
            run("names: {range .items[*]}[{@.metadata.name}]{end}"),
            "names: [a][b]"
        );
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{range .items[*]}{.a}").is_err());
        assert!(Template::parse("{end}").is_err());
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{.items[x]}").is_err());
    }
}
