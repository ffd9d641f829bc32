//! `-o` formats other than tables: yaml, json (4-space indent like kubectl), name, and
//! jsonpath; several objects are wrapped in a `v1 List` as kubectl does.

use serde::Serialize;
use serde_json::{json, Value};

use crate::discovery::ResourceInfo;
use crate::error::Error;
use crate::jsonpath::Template;

#[derive(Debug, Clone)]
pub enum OutputFormat {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
    JsonPath(Template),
}

impl OutputFormat {
    pub fn parse(flag: Option<&str>) -> Result<Self, Error> {
        Ok(match flag {
            None | Some("") => OutputFormat::Table,
            Some("wide") => OutputFormat::Wide,
            Some("yaml") => OutputFormat::Yaml,
            Some("json") => OutputFormat::Json,
            Some("name") => OutputFormat::Name,
            Some(o) => match o.split_once('=') {
                Some(("jsonpath", t)) => OutputFormat::JsonPath(Template::parse(t)?),
                _ => {
                    return Err(Error::Usage(format!(
                        "unable to match a printer suitable for the output format \"{o}\", allowed formats are: json,jsonpath,name,wide,yaml"
                    )))
                }
            },
        })
    }

    pub fn is_table(&self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Wide)
    }
}

/// `pod/web`, `deployment.apps/web`.
pub fn name_of(res: &ResourceInfo, obj: &Value) -> String {
    format!(
        "{}/{}",
        res.type_name(),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// A `v1 List` holding the objects, the way kubectl prints several objects as yaml/json.
pub fn list_of(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)
        .expect("a JSON value always serializes");
    let mut s = String::from_utf8(buf).expect("serde_json writes UTF-8");
    s.push('\n');
    s
}

pub fn to_yaml(v: &Value) -> String {
    crate::yaml::to_string(v)
}

/// Keys in alphabetical order at every level, as kubectl prints yaml and json (it
/// marshals Go maps, whose keys encoding/json sorts).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Prints one value (an object or a List) in a non-table format.
pub fn render_value(format: &OutputFormat, v: &Value) -> String {
    match format {
        OutputFormat::Yaml => to_yaml(&sorted(v)),
        OutputFormat::Json => to_json(&sorted(v)),
        OutputFormat::JsonPath(t) => t.render(v),
        _ => to_json(v),
    }
}

/// Readies an object for printing: fills in `apiVersion` and `kind`, which list responses
/// leave out of their items, and drops `metadata.managedFields` as kubectl does unless
/// `--show-managed-fields`.
pub fn with_type(res: &ResourceInfo, mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(m) = obj.as_object_mut() {
        let mut out = serde_json::Map::new();
        out.insert("apiVersion".into(), Value::String(res.api_version()));
        out.insert("kind".into(), Value::String(res.kind.clone()));
        for (k, v) in std::mem::take(m) {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, v);
            }
        }
        *m = out;
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(matches!(
            OutputFormat::parse(Some("wide")).unwrap(),
            OutputFormat::Wide
        ));
        assert!(matches!(
            OutputFormat::parse(Some("jsonpath={.a}")).unwrap(),
            OutputFormat::JsonPath(_)
        ));
        let err = OutputFormat::parse(Some("xml")).unwrap_err().to_string();
        assert!(err.contains("\"xml\""), "{err}");
    }

    #[test]
    fn keys_sorted_like_kubectl() {
        let v =
            json!({"spec": {"b": 1, "a": [{"y": 1, "x": 2}]}, "kind": "Pod", "apiVersion": "v1"});
        assert_eq!(
            render_value(&OutputFormat::Yaml, &v),
            "apiVersion: v1\nkind: Pod\nspec:\n  a:\n  - x: 2\n    \"y\": 1\n  b: 1\n"
        );
    }

    #[test]
    fn json_has_kubectl_indent() {
        assert_eq!(
            to_json(&json!({"a": {"b": 1}})),
            "{\n    \"a\": {\n        \"b\": 1\n    }\n}\n"
        );
    }

    #[test]
    fn type_is_filled_first() {
        let res = crate::discovery::tests::sample_index()
            .resolve("deploy")
            .unwrap()
            .clone();
        let v = with_type(
            &res,
            json!({"metadata": {"name": "w", "managedFields": [{"manager": "x"}]}}),
        );
        assert_eq!(
            to_yaml(&v),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w\n"
        );
        assert_eq!(name_of(&res, &v), "deployment.apps/w");
    }
}
