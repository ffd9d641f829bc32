//! Reading manifests: `-f FILE|DIR|-` (with `-R`), multi-document YAML, JSON (one object,
//! a stream of objects, or an array), and `List` kinds, into one object per entry. Every
//! error names the file, the document's index in it (1-based) and the line, so a user can
//! find the bad document; one bad document never hides the good ones.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::schema;

/// File extensions kubectl reads from a directory (`resource.FileExtensions`).
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// One input: a file, or stdin (named `STDIN` like kubectl's messages).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based index of the YAML/JSON document in the file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// 1-based index within a `List`'s items.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)?;
        if let Some(i) = self.item {
            write!(f, " item {i}")?;
        }
        Ok(())
    }
}

impl Origin {
    /// The origin with its starting line, for errors about a whole document (its kind or
    /// name), so a user finds it in a long file like a syntax error.
    pub fn with_line(&self) -> String {
        format!("{self} (line {})", self.line)
    }
}

/// One parsed object.
#[derive(Debug, Clone)]
pub struct Document {
    pub origin: Origin,
    pub object: Value,
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> Option<&str> {
        self.object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
    }
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the path \"{}\" does not exist", .path.display())]
    PathMissing { path: PathBuf },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("error parsing {origin} (line {line}): {message}")]
    Syntax {
        origin: Origin,
        line: usize,
        message: String,
    },
    #[error("error validating {origin} (line {}): {message}", .origin.line)]
    Invalid { origin: Origin, message: String },
    #[error("no objects passed to {verb}")]
    Empty { verb: String },
}

/// Reads every `-f` argument into sources, in order. Directories are read in name order,
/// only `.yaml`, `.yml` and `.json` files, and subdirectories only with `-R`.
pub fn read_sources(filenames: &[String], recursive: bool) -> Result<Vec<Source>, ManifestError> {
    let mut out = Vec::new();
    for f in filenames {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Read {
                    path: "STDIN".into(),
                    source,
                })?;
            out.push(Source {
                name: "STDIN".into(),
                text,
            });
            continue;
        }
        let path = Path::new(f);
        if !path.exists() {
            return Err(ManifestError::PathMissing { path: path.into() });
        }
        if path.is_dir() {
            read_dir(path, recursive, &mut out)?;
        } else {
            out.push(read_file(path)?);
        }
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<Source, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.into(),
        source,
    })?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

fn read_dir(dir: &Path, recursive: bool, out: &mut Vec<Source>) -> Result<(), ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: dir.into(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                read_dir(&p, recursive, out)?;
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(read_file(&p)?);
        }
    }
    Ok(())
}

/// Parses one source into objects (or one error per bad document), in order.
pub fn parse(source: &Source) -> Vec<Result<Document, ManifestError>> {
    let trimmed = source.text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') || source.name.ends_with(".json") {
        parse_json(source)
    } else {
        parse_yaml(source)
    }
}

/// A YAML document's text and the line it starts on.
struct Chunk {
    text: String,
    line: usize,
}

/// Splits a YAML stream at `---` lines. Done by hand (not by serde_yaml's multi-document
/// iterator) so a syntax error in one document doesn't stop the ones after it.
fn split_yaml(text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep || line.trim_end() == "..." {
            chunks.push(Chunk {
                text: std::mem::take(&mut cur),
                line: start,
            });
            start = i + 1;
            if is_sep {
                // `--- {inline: doc}` keeps its content; pad so line numbers stay right.
                cur.push_str(&line[3..]);
                cur.push('\n');
            } else {
                start = i + 2;
            }
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    chunks.push(Chunk {
        text: cur,
        line: start,
    });
    chunks
}

fn is_blank(yaml: &str) -> bool {
    yaml.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

fn parse_yaml(source: &Source) -> Vec<Result<Document, ManifestError>> {
    let mut out = Vec::new();
    let mut index = 0;
    for chunk in split_yaml(&source.text) {
        if is_blank(&chunk.text) {
            continue;
        }
        index += 1;
        let first = chunk
            .text
            .lines()
            .position(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#')
            })
            .unwrap_or(0);
        let origin = Origin {
            file: source.name.clone(),
            document: index,
            line: chunk.line + first,
            item: None,
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(&chunk.text) {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(yaml_error(origin, chunk.line, &e)));
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        let object = match serde_json::to_value(&value) {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(ManifestError::Invalid {
                    origin,
                    message: e.to_string(),
                }));
                continue;
            }
        };
        let typed = |o: &Value| {
            schema::check_yaml(o, &chunk.text).map_err(|mut e| {
                e.line = e.line.map(|l| chunk.line + l - 1);
                e
            })
        };
        out.extend(into_documents(origin, object, typed));
    }
    out
}

/// A serde_yaml error with the line made absolute in the file.
fn yaml_error(origin: Origin, chunk_line: usize, e: &serde_yaml::Error) -> ManifestError {
    let mut message = e.to_string();
    let mut line = origin.line;
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
        line = chunk_line + loc.line() - 1;
    }
    ManifestError::Syntax {
        origin,
        line,
        message,
    }
}

fn parse_json(source: &Source) -> Vec<Result<Document, ManifestError>> {
    let text = &source.text;
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut index = 0;
    loop {
        let start = stream.byte_offset();
        let Some(item) = stream.next() else { break };
        index += 1;
        let first = start + (text[start..].len() - text[start..].trim_start().len());
        let line = 1 + text[..first].matches('\n').count();
        let origin = Origin {
            file: source.name.clone(),
            document: index,
            line,
            item: None,
        };
        match item {
            Ok(Value::Array(items)) => {
                for (i, v) in items.into_iter().enumerate() {
                    let o = Origin {
                        item: Some(i + 1),
                        ..origin.clone()
                    };
                    out.extend(into_documents(o, v, schema::check_json));
                }
            }
            Ok(v) => out.extend(into_documents(origin, v, schema::check_json)),
            Err(e) => {
                let message = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                let message = message
                    .strip_suffix(&suffix)
                    .unwrap_or(&message)
                    .to_string();
                out.push(Err(ManifestError::Syntax {
                    origin,
                    line: e.line(),
                    message,
                }));
                // A JSON stream can't resynchronise after a syntax error.
                break;
            }
        }
    }
    out
}

/// Checks the object shape and expands `List` kinds into their items.
fn into_documents(
    origin: Origin,
    object: Value,
    typed: impl Fn(&Value) -> Result<(), schema::TypeError>,
) -> Vec<Result<Document, ManifestError>> {
    let invalid = |origin: Origin, message: String| Err(ManifestError::Invalid { origin, message });
    if !object.is_object() {
        return vec![invalid(
            origin,
            format!("expected a Kubernetes object, found {}", json_kind(&object)),
        )];
    }
    let kind = object["kind"].as_str().unwrap_or("");
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let mut missing = Vec::new();
    if api_version.is_empty() {
        missing.push("apiVersion not set");
    }
    if kind.is_empty() {
        missing.push("kind not set");
    }
    if !missing.is_empty() {
        return vec![invalid(origin, missing.join(", "))];
    }
    // `v1 List` and `FooList` objects carry their members in `items` (kubectl flattens them).
    if kind.ends_with("List") && object["items"].is_array() {
        let items = object["items"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let o = Origin {
                item: Some(i + 1),
                ..origin.clone()
            };
            out.extend(into_documents(o, item, schema::check_json));
        }
        return out;
    }
    if let Err(e) = typed(&object) {
        let message = match e.line {
            Some(l) => format!("{} at line {l}", e.message),
            None => e.message,
        };
        return vec![invalid(origin, message)];
    }
    vec![Ok(Document { origin, object })]
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn multi_document_yaml_in_order() {
        let docs = parse(&src(
            "a.yaml",
            "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: two\n",
        ));
        let docs: Vec<Document> = docs.into_iter().map(Result::unwrap).collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].name(), Some("one"));
        assert_eq!(docs[0].origin.document, 1);
        assert_eq!(docs[1].kind(), "Pod");
        assert_eq!(docs[1].origin.document, 2);
        assert_eq!(docs[1].origin.line, 9);
    }

    #[test]
    fn syntax_error_names_file_document_and_line_and_keeps_going() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n   labels: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n";
        let docs = parse(&src("m.yaml", text));
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_ok() && docs[2].is_ok());
        let err = docs[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("error parsing m.yaml: document 2 (line 9): "),
            "{err}"
        );
    }

    #[test]
    fn missing_kind_and_api_version() {
        let docs = parse(&src("x.yaml", "metadata:\n  name: a\n"));
        let err = docs[0].as_ref().unwrap_err().to_string();
        assert_eq!(
            err,
            "error validating x.yaml: document 1 (line 1): apiVersion not set, kind not set"
        );
    }

    #[test]
    fn scalar_document_is_rejected() {
        let docs = parse(&src("x.yaml", "just a string\n"));
        let err = docs[0].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("expected a Kubernetes object, found a string"),
            "{err}"
        );
    }

    #[test]
    fn json_object_stream_and_array() {
        let docs = parse(&src(
            "x.json",
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"b\"}}",
        ));
        let names: Vec<_> = docs
            .iter()
            .map(|d| d.as_ref().unwrap().name().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let docs = parse(&src(
            "y.json",
            "[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"n\"}}]",
        ));
        assert_eq!(docs[0].as_ref().unwrap().kind(), "Namespace");
    }

    #[test]
    fn json_syntax_error_has_line() {
        let docs = parse(&src("x.json", "{\n\"apiVersion\": \"v1\",\n\"kind\": \n}"));
        let err = docs.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("error parsing x.json: document 1 (line 4): "),
            "{err}"
        );
    }

    #[test]
    fn list_kind_is_flattened() {
        let docs = parse(&src(
            "l.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n",
        ));
        assert_eq!(docs.len(), 2);
        let b = docs[1].as_ref().unwrap();
        assert_eq!(b.kind(), "Secret");
        assert_eq!(b.origin.item, Some(2));
        assert_eq!(b.origin.to_string(), "l.yaml: document 1 item 2");
    }

    #[test]
    fn wrong_type_names_field_and_absolute_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n";
        let docs = parse(&src("d.yaml", text));
        let err = docs[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("error validating d.yaml: document 2 (line 5): "),
            "{err}"
        );
        assert!(err.contains("spec.replicas"), "{err}");
        assert!(err.contains("line 10"), "{err}");
    }

    #[test]
    fn directory_reading_filters_extensions_and_recurses_only_with_r() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "x").unwrap();
        std::fs::write(dir.path().join("a.json"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.yml"), "x").unwrap();
        let d = dir.path().display().to_string();
        let names = |r| -> Vec<String> {
            read_sources(std::slice::from_ref(&d), r)
                .unwrap()
                .into_iter()
                .map(|s| s.name.rsplit('/').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(false), ["a.json", "b.yaml"]);
        assert_eq!(names(true), ["a.json", "b.yaml", "c.yml"]);
        let err = read_sources(&["/nonexistent/x.yaml".into()], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the path \"/nonexistent/x.yaml\" does not exist"
        );
    }
}
