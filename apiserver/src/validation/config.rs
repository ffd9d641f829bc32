//! ConfigMap, Secret and ServiceAccount validation (`ValidateConfigMap`, `ValidateSecret`).

use base64::Engine;
use serde_json::Value;

use super::names::config_map_key;
use super::{str_at, FieldCause, Path};

/// The size limit of a ConfigMap's or Secret's data (1 MiB, `MaxSecretSize`).
const MAX_DATA_SIZE: usize = 1024 * 1024;

pub(crate) fn validate_config_map(obj: &Value, causes: &mut Vec<FieldCause>) {
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0;
    for (key, value) in data.into_iter().flatten() {
        let at = Path::root("data").key(key);
        for msg in config_map_key(key) {
            causes.push(FieldCause::invalid(&at, key.as_str(), &msg));
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            causes.push(FieldCause::invalid(
                &at,
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        let at = Path::root("binaryData").key(key);
        for msg in config_map_key(key) {
            causes.push(FieldCause::invalid(&at, key.as_str(), &msg));
        }
        total += decoded_len(value);
    }
    if total > MAX_DATA_SIZE {
        causes.push(FieldCause::too_long(&Path::root(""), MAX_DATA_SIZE));
    }
    validate_base64("binaryData", binary, causes);
}

/// Secret `data` and ConfigMap `binaryData` values are base64 (standard alphabet, padded), as
/// Go's `[]byte` JSON decoding requires. Kubernetes refuses others while decoding (400,
/// `illegal base64 data at input byte N`); this reports them as invalid fields instead, so that
/// they are never stored.
fn validate_base64(
    field: &str,
    map: Option<&serde_json::Map<String, Value>>,
    causes: &mut Vec<FieldCause>,
) {
    for (key, value) in map.into_iter().flatten() {
        let text = value.as_str().unwrap_or("");
        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) {
            let detail = match e {
                base64::DecodeError::InvalidByte(at, _)
                | base64::DecodeError::InvalidLastSymbol(at, _) => {
                    format!("illegal base64 data at input byte {at}")
                }
                _ => format!("illegal base64 data at input byte {}", text.len()),
            };
            causes.push(FieldCause::invalid(
                &Path::root(field).key(key),
                "<value omitted>",
                &detail,
            ));
        }
    }
}

/// The decoded size of a base64 string value (what the limit counts).
fn decoded_len(value: &Value) -> usize {
    value
        .as_str()
        .map_or(0, |s| s.trim_end_matches('=').len() * 3 / 4)
}

/// Keys each built-in Secret type requires in `data`.
fn required_keys(secret_type: &str) -> &'static [&'static str] {
    match secret_type {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    }
}

pub(crate) fn validate_secret(obj: &Value, causes: &mut Vec<FieldCause>) {
    let data = obj.get("data").and_then(Value::as_object);
    let mut total = 0;
    for (key, value) in data.into_iter().flatten() {
        for msg in config_map_key(key) {
            causes.push(FieldCause::invalid(
                &Path::root("data").key(key),
                key.as_str(),
                &msg,
            ));
        }
        total += decoded_len(value);
    }
    // stringData is merged into data by the server; its keys follow the same rule.
    for (key, value) in obj
        .get("stringData")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for msg in config_map_key(key) {
            causes.push(FieldCause::invalid(
                &Path::root("stringData").key(key),
                key.as_str(),
                &msg,
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    if total > MAX_DATA_SIZE {
        causes.push(FieldCause::too_long(&Path::root("data"), MAX_DATA_SIZE));
    }
    validate_base64("data", data, causes);
    let secret_type = str_at(obj, "type");
    let has = |k: &str| {
        data.is_some_and(|d| d.contains_key(k))
            || obj.get("stringData").and_then(|s| s.get(k)).is_some()
    };
    for key in required_keys(secret_type) {
        if !has(key) {
            causes.push(FieldCause::required(&Path::root("data").key(key), ""));
        }
    }
    if secret_type == "kubernetes.io/service-account-token" {
        let annotation = "kubernetes.io/service-account.name";
        let present = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(annotation))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !present {
            let at = Path::root("metadata").child("annotations").key(annotation);
            causes.push(FieldCause::required(&at, ""));
        }
    }
}

/// ServiceAccounts have nothing beyond their metadata to check.
pub(crate) fn validate_service_account(_obj: &Value, _causes: &mut [FieldCause]) {}
