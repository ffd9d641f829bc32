//! `fieldValidation=Strict|Warn`: unknown and duplicate fields of a request body.
//!
//! Duplicates are found while parsing (JSON or YAML) with a visitor that sees every key, as
//! sigs.k8s.io/json's strict decoder does. Unknown fields are found by decoding the body into
//! the k8s-openapi type of the kind (which ignores fields it does not know), encoding it again
//! and listing what did not survive. Messages are Kubernetes': `unknown field
//! "spec.containers[0].imagePullPolicyy"` and `duplicate field "metadata.name"`.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::{Map, Value};

use k8s_openapi::api::{apps, autoscaling, coordination, core, discovery, policy};

/// The unknown and duplicate fields of `raw` (a JSON or YAML body for an object of `kind`), as
/// Kubernetes words them; empty when there are none or when the body does not parse (the
/// decoder then reports the error itself).
pub fn unknown_fields(kind: &str, raw: &[u8]) -> Vec<String> {
    let mut duplicates = Vec::new();
    let seed = NodeSeed {
        duplicates: &mut duplicates,
        path: String::new(),
    };
    let is_json = raw
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    let parsed = if is_json {
        let mut de = serde_json::Deserializer::from_slice(raw);
        seed.deserialize(&mut de).ok()
    } else {
        seed.deserialize(serde_yaml::Deserializer::from_slice(raw))
            .ok()
    };
    let Some(value) = parsed else {
        return Vec::new();
    };
    let mut out: Vec<String> = unknown_field_paths(kind, &value)
        .into_iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    out.extend(
        duplicates
            .into_iter()
            .map(|p| format!("duplicate field \"{p}\"")),
    );
    out
}

/// The paths (`spec.containers[0].imagePullPolicyy`) of the fields of an already parsed object
/// of `kind` that its type does not have; empty for kinds without a known type.
pub fn unknown_field_paths(kind: &str, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(typed) = round_trip(kind, value) {
        compare(value, &typed, "", &mut out);
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Lists fields of `input` that the typed round trip dropped.
fn compare(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(input), Value::Object(typed)) => {
            for (key, value) in input.iter().filter(|(_, v)| !v.is_null()) {
                let at = join(path, key);
                match typed.get(key) {
                    None => out.push(at),
                    Some(t) => compare(value, t, &at, out),
                }
            }
        }
        (Value::Array(input), Value::Array(typed)) => {
            for (i, (a, b)) in input.iter().zip(typed).enumerate() {
                compare(a, b, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes `value` as the k8s-openapi type of `kind` and encodes it again.
fn round_trip(kind: &str, value: &Value) -> Option<Value> {
    // events.k8s.io/v1 Events share the kind with core/v1 ones but not the fields.
    let body_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind == "Event" && body_version.starts_with("events.k8s.io/") {
        let mut value = value.clone();
        value["apiVersion"] = "events.k8s.io/v1".into();
        return via::<k8s_openapi::api::events::v1::Event>(value);
    }
    let api_version = api_version(kind)?;
    let mut value = value.clone();
    if let Value::Object(map) = &mut value {
        // k8s-openapi insists on its own apiVersion/kind; whether they are right is the
        // decoder's business, not this check's.
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    match kind {
        "Pod" => via::<core::v1::Pod>(value),
        "Service" => via::<core::v1::Service>(value),
        "Endpoints" => via::<core::v1::Endpoints>(value),
        "Node" => via::<core::v1::Node>(value),
        "Namespace" => via::<core::v1::Namespace>(value),
        "ConfigMap" => via::<core::v1::ConfigMap>(value),
        "Secret" => via::<core::v1::Secret>(value),
        "Event" => via::<core::v1::Event>(value),
        "ServiceAccount" => via::<core::v1::ServiceAccount>(value),
        "Binding" => via::<core::v1::Binding>(value),
        "Deployment" => via::<apps::v1::Deployment>(value),
        "ReplicaSet" => via::<apps::v1::ReplicaSet>(value),
        "Lease" => via::<coordination::v1::Lease>(value),
        "EndpointSlice" => via::<discovery::v1::EndpointSlice>(value),
        "Scale" => via::<autoscaling::v1::Scale>(value),
        "Eviction" => via::<policy::v1::Eviction>(value),
        _ => None,
    }
}

/// The group-version of the kinds we know.
fn api_version(kind: &str) -> Option<&'static str> {
    let api_version = match kind {
        "Pod" | "Service" | "Endpoints" | "Node" | "Namespace" | "ConfigMap" | "Secret"
        | "Event" | "ServiceAccount" | "Binding" => "v1",
        "Deployment" | "ReplicaSet" => "apps/v1",
        "Lease" => "coordination.k8s.io/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "Scale" => "autoscaling/v1",
        "Eviction" => "policy/v1",
        _ => return None,
    };
    Some(api_version)
}

fn via<T: DeserializeOwned + Serialize>(value: Value) -> Option<Value> {
    let typed: T = serde_json::from_value(value).ok()?;
    serde_json::to_value(typed).ok()
}

/// Deserializes any value into a `serde_json::Value`, recording repeated object keys.
struct NodeSeed<'a> {
    duplicates: &'a mut Vec<String>,
    path: String,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON or YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = NodeSeed {
                duplicates: &mut *self.duplicates,
                path: format!("{}[{}]", self.path, items.len()),
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let path = join(&self.path, &key);
            let seed = NodeSeed {
                duplicates: &mut *self.duplicates,
                path: path.clone(),
            };
            let value = access.next_value_seed(seed)?;
            // Like Go's decoder, the last value wins; the repetition is reported.
            if map.insert(key, value).is_some() {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(map))
    }
}

/// Reads a map key of any scalar type as a string (YAML allows `80:` as a key).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_unit<E>(self) -> Result<String, E> {
        Ok("null".to_string())
    }
}
