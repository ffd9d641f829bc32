//! Client-side type checks for the built-in kinds: decoding a document into its
//! `k8s-openapi` type catches wrong value types (`replicas: three`) before anything is sent,
//! with the field path and the line; and a round trip through that type finds fields the
//! kind doesn't have (`datta:`), reported like the server's strict field validation
//! (`unknown field "spec.containers[0].imagee"`). The server checks again (`fieldValidation=Strict`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};

/// A value of the wrong type; `line` is relative to the document's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    pub message: String,
    pub line: Option<usize>,
}

/// Decoders for one built-in kind.
struct Decoder {
    yaml: fn(&str) -> Result<(), TypeError>,
    json: fn(&Value) -> Result<(), TypeError>,
    /// The object after decoding into the type and encoding again: what the type keeps.
    roundtrip: fn(&Value) -> Option<Value>,
}

impl Decoder {
    fn of<T: DeserializeOwned + Serialize>() -> Decoder {
        Decoder {
            yaml: |text| {
                serde_yaml::from_str::<T>(text).map(drop).map_err(|e| {
                    let mut message = e.to_string();
                    let line = e.location().map(|loc| {
                        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
                        if let Some(m) = message.strip_suffix(&suffix) {
                            message = m.to_string();
                        }
                        loc.line()
                    });
                    TypeError { message, line }
                })
            },
            json: |v| {
                serde_json::from_value::<T>(v.clone())
                    .map(drop)
                    .map_err(|e| TypeError {
                        message: e.to_string(),
                        line: None,
                    })
            },
            roundtrip: |v| {
                serde_json::from_value::<T>(v.clone())
                    .ok()
                    .and_then(|t| serde_json::to_value(t).ok())
            },
        }
    }
}

fn decoder(object: &Value) -> Option<Decoder> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    Some(match (api_version, kind) {
        ("v1", "Pod") => Decoder::of::<core::Pod>(),
        ("v1", "Service") => Decoder::of::<core::Service>(),
        ("v1", "ConfigMap") => Decoder::of::<core::ConfigMap>(),
        ("v1", "Secret") => Decoder::of::<core::Secret>(),
        ("v1", "Namespace") => Decoder::of::<core::Namespace>(),
        ("v1", "Node") => Decoder::of::<core::Node>(),
        ("v1", "Endpoints") => Decoder::of::<core::Endpoints>(),
        ("v1", "ServiceAccount") => Decoder::of::<core::ServiceAccount>(),
        ("apps/v1", "Deployment") => Decoder::of::<apps::Deployment>(),
        ("apps/v1", "ReplicaSet") => Decoder::of::<apps::ReplicaSet>(),
        ("apps/v1", "DaemonSet") => Decoder::of::<apps::DaemonSet>(),
        ("apps/v1", "StatefulSet") => Decoder::of::<apps::StatefulSet>(),
        ("batch/v1", "Job") => Decoder::of::<batch::Job>(),
        _ => return None,
    })
}

/// Type-checks a YAML document from its own text, so the error carries a line.
pub fn check_yaml(object: &Value, text: &str) -> Result<(), TypeError> {
    let Some(d) = decoder(object) else {
        return Ok(());
    };
    (d.yaml)(text)?;
    unknown_field(&d, object).map_or(Ok(()), |path| {
        Err(TypeError {
            line: line_of(text, &path),
            message: format!("strict decoding error: unknown field \"{path}\""),
        })
    })
}

/// Type-checks an object that came from JSON or a `List` item (no line information).
pub fn check_json(object: &Value) -> Result<(), TypeError> {
    let Some(d) = decoder(object) else {
        return Ok(());
    };
    (d.json)(object)?;
    unknown_field(&d, object).map_or(Ok(()), |path| {
        Err(TypeError {
            line: None,
            message: format!("strict decoding error: unknown field \"{path}\""),
        })
    })
}

/// The first field of `object` its type dropped, as a path like `spec.containers[0].imagee`.
fn unknown_field(d: &Decoder, object: &Value) -> Option<String> {
    let kept = (d.roundtrip)(object)?;
    first_missing(object, &kept, "")
}

fn first_missing(input: &Value, kept: &Value, path: &str) -> Option<String> {
    match (input, kept) {
        (Value::Object(i), Value::Object(k)) => i.iter().find_map(|(key, v)| {
            let p = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match k.get(key) {
                // An explicit null is dropped by the round trip without being unknown.
                None if v.is_null() => None,
                None => Some(p),
                Some(kv) => first_missing(v, kv, &p),
            }
        }),
        (Value::Array(i), Value::Array(k)) => i
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(n, (iv, kv))| first_missing(iv, kv, &format!("{path}[{n}]"))),
        _ => None,
    }
}

/// The line (1-based, in the document) of the last key of `path`, when that key name
/// occurs exactly once in the document.
fn line_of(text: &str, path: &str) -> Option<usize> {
    let key = path.rsplit('.').next()?.split('[').next()?;
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:")) || t.starts_with(&format!("\"{key}\":"))
        })
        .map(|(i, _)| i + 1)
        .collect();
    match hits.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_wrong_type_is_caught() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                       "spec": {"replicas": "three"}});
        assert!(check_json(&v).is_err());
        let ok = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}});
        assert!(check_json(&ok).is_ok());
        let unknown = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": 3});
        assert!(check_json(&unknown).is_ok());
    }

    #[test]
    fn unknown_fields_are_found_with_path_and_line() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    imagee: busybox\n";
        let v: Value = serde_yaml::from_str(text).unwrap();
        let err = check_yaml(&v, text).unwrap_err();
        assert_eq!(
            err.message,
            "strict decoding error: unknown field \"spec.containers[0].imagee\""
        );
        assert_eq!(err.line, Some(8));
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {}},
                        "data": {"any": "thing"}, "binaryData": null});
        assert_eq!(check_json(&ok), Ok(()));
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "datta": {}});
        assert_eq!(
            check_json(&bad).unwrap_err().message,
            "strict decoding error: unknown field \"datta\""
        );
    }

    #[test]
    fn yaml_wrong_type_has_path_and_line() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n";
        let v: Value = serde_yaml::from_str(text).unwrap();
        let err = check_yaml(&v, text).unwrap_err();
        assert_eq!(err.line, Some(6), "{err:?}");
        assert!(err.message.contains("spec.replicas"), "{err:?}");
    }
}
