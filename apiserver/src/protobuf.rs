//! Kubernetes' protobuf request encoding (`application/vnd.kubernetes.protobuf`), decoded
//! into the JSON form, for the kinds kubectl's typed clients send that way: `kubectl create
//! namespace|configmap|secret|serviceaccount|deployment|service` (client-go's typed
//! clientsets default to protobuf for built-in kinds since 1.32).
//!
//! The envelope is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` message
//! (1: typeMeta {1: apiVersion, 2: kind}, 2: raw), whose `raw` is the object's message. The
//! field numbers below are those of the Kubernetes API's `generated.proto` (the wire
//! contract). A field this table does not know is refused (415, "send JSON") rather than
//! dropped, so nothing is silently lost.

use base64::Engine;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic number")]
    Magic,
    #[error("malformed protobuf body: {0}")]
    Wire(&'static str),
    #[error("protobuf field {field} of {message} is not supported by this server; send JSON")]
    UnknownField { message: &'static str, field: u64 },
    #[error("protobuf bodies of kind {0:?} are not supported by this server; send JSON")]
    UnknownKind(String),
}

/// How one field's value is encoded.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    /// Non-pointer Go fields, written even when zero; Kubernetes' JSON omits their zero.
    ZBool,
    ZI32,
    ZI64,
    Msg(&'static str),
    /// `map<string, V>` (entries are messages {1: key, 2: value}).
    Map(&'static Ty),
    Repeated(&'static Ty),
    Time,
    IntOrString,
    Quantity,
}

type Fields = &'static [(u64, &'static str, Ty)];

const STR_MAP: Ty = Ty::Map(&Ty::Str);
const STRS: Ty = Ty::Repeated(&Ty::Str);

fn schema(message: &str) -> Option<Fields> {
    use Ty::*;
    Some(match message {
        "ObjectMeta" => &[
            (1, "name", Str),
            (2, "generateName", Str),
            (3, "namespace", Str),
            (4, "selfLink", Str),
            (5, "uid", Str),
            (6, "resourceVersion", Str),
            (7, "generation", ZI64),
            (8, "creationTimestamp", Time),
            (9, "deletionTimestamp", Time),
            (10, "deletionGracePeriodSeconds", I64),
            (11, "labels", STR_MAP),
            (12, "annotations", STR_MAP),
            (13, "ownerReferences", Repeated(&Msg("OwnerReference"))),
            (14, "finalizers", STRS),
        ],
        "OwnerReference" => &[
            (1, "kind", Str),
            (3, "name", Str),
            (4, "uid", Str),
            (5, "apiVersion", Str),
            (6, "controller", Bool),
            (7, "blockOwnerDeletion", Bool),
        ],
        "LabelSelector" => &[
            (1, "matchLabels", STR_MAP),
            (
                2,
                "matchExpressions",
                Repeated(&Msg("LabelSelectorRequirement")),
            ),
        ],
        "LabelSelectorRequirement" => &[(1, "key", Str), (2, "operator", Str), (3, "values", STRS)],
        "Namespace" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("NamespaceSpec")),
            (3, "status", Msg("NamespaceStatus")),
        ],
        "NamespaceSpec" => &[(1, "finalizers", STRS)],
        "NamespaceStatus" => &[(1, "phase", Str)],
        "ConfigMap" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", STR_MAP),
            (3, "binaryData", Map(&Bytes)),
            (4, "immutable", Bool),
        ],
        "Secret" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", Map(&Bytes)),
            (3, "type", Str),
            (4, "stringData", STR_MAP),
            (5, "immutable", Bool),
        ],
        "ServiceAccount" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "secrets", Repeated(&Msg("ObjectReference"))),
            (
                3,
                "imagePullSecrets",
                Repeated(&Msg("LocalObjectReference")),
            ),
            (4, "automountServiceAccountToken", Bool),
        ],
        "ObjectReference" => &[
            (1, "kind", Str),
            (2, "namespace", Str),
            (3, "name", Str),
            (4, "uid", Str),
            (5, "apiVersion", Str),
            (6, "resourceVersion", Str),
            (7, "fieldPath", Str),
        ],
        "LocalObjectReference" => &[(1, "name", Str)],
        "Deployment" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("DeploymentSpec")),
            (3, "status", Msg("Empty")),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", I32),
            (2, "selector", Msg("LabelSelector")),
            (3, "template", Msg("PodTemplateSpec")),
            (4, "strategy", Msg("DeploymentStrategy")),
            (5, "minReadySeconds", ZI32),
            (6, "revisionHistoryLimit", I32),
            (7, "paused", ZBool),
            (9, "progressDeadlineSeconds", I32),
        ],
        "DeploymentStrategy" => &[
            (1, "type", Str),
            (2, "rollingUpdate", Msg("RollingUpdateDeployment")),
        ],
        "RollingUpdateDeployment" => &[
            (1, "maxUnavailable", IntOrString),
            (2, "maxSurge", IntOrString),
        ],
        "PodTemplateSpec" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
        ],
        "PodSpec" => &[
            (2, "containers", Repeated(&Msg("Container"))),
            (3, "restartPolicy", Str),
            (4, "terminationGracePeriodSeconds", I64),
            (6, "dnsPolicy", Str),
            (7, "nodeSelector", STR_MAP),
            (8, "serviceAccountName", Str),
            (9, "serviceAccount", Str),
            (10, "nodeName", Str),
            (11, "hostNetwork", ZBool),
            (12, "hostPID", ZBool),
            (13, "hostIPC", ZBool),
            (16, "hostname", Str),
            (17, "subdomain", Str),
            (19, "schedulerName", Str),
            (20, "initContainers", Repeated(&Msg("Container"))),
            (24, "priorityClassName", Str),
            (29, "runtimeClassName", Str),
            (30, "enableServiceLinks", Bool),
            (31, "preemptionPolicy", Str),
        ],
        "Container" => &[
            (1, "name", Str),
            (2, "image", Str),
            (3, "command", STRS),
            (4, "args", STRS),
            (5, "workingDir", Str),
            (6, "ports", Repeated(&Msg("ContainerPort"))),
            (7, "env", Repeated(&Msg("EnvVar"))),
            (8, "resources", Msg("ResourceRequirements")),
            (13, "terminationMessagePath", Str),
            (14, "imagePullPolicy", Str),
            (16, "stdin", ZBool),
            (17, "stdinOnce", ZBool),
            (18, "tty", ZBool),
            (20, "terminationMessagePolicy", Str),
        ],
        "ContainerPort" => &[
            (1, "name", Str),
            (2, "hostPort", ZI32),
            (3, "containerPort", ZI32),
            (4, "protocol", Str),
            (5, "hostIP", Str),
        ],
        "EnvVar" => &[(1, "name", Str), (2, "value", Str)],
        "ResourceRequirements" => &[
            (1, "limits", Map(&Quantity)),
            (2, "requests", Map(&Quantity)),
        ],
        "Service" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ServiceSpec")),
            (3, "status", Msg("ServiceStatus")),
        ],
        "ServiceSpec" => &[
            (1, "ports", Repeated(&Msg("ServicePort"))),
            (2, "selector", STR_MAP),
            (3, "clusterIP", Str),
            (4, "type", Str),
            (5, "externalIPs", STRS),
            (7, "sessionAffinity", Str),
            (10, "externalName", Str),
            (18, "clusterIPs", STRS),
        ],
        "ServicePort" => &[
            (1, "name", Str),
            (2, "protocol", Str),
            (3, "port", ZI32),
            (4, "targetPort", IntOrString),
            (5, "nodePort", ZI32),
            (6, "appProtocol", Str),
        ],
        "ServiceStatus" => &[(1, "loadBalancer", Msg("Empty"))],
        "Empty" => &[],
        _ => return None,
    })
}

/// The root message of each kind accepted in protobuf.
fn root_message(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Namespace" => "Namespace",
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        "ServiceAccount" => "ServiceAccount",
        "Deployment" => "Deployment",
        "Service" => "Service",
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or(ProtobufError::Wire("truncated varint"))?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtobufError::Wire("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Wire("length"))?;
        if len > self.buf.len() {
            return Err(ProtobufError::Wire("truncated field"));
        }
        let (field, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(field)
    }
}

/// One raw field: its number and either a varint or a length-delimited payload.
enum Raw<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Raw<'_>)>, ProtobufError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while !r.buf.is_empty() {
        let tag = r.varint()?;
        let raw = match tag & 7 {
            0 => Raw::Varint(r.varint()?),
            2 => Raw::Len(r.bytes()?),
            _ => return Err(ProtobufError::Wire("unsupported wire type")),
        };
        out.push((tag >> 3, raw));
    }
    Ok(out)
}

fn string(raw: &Raw<'_>) -> Result<String, ProtobufError> {
    match raw {
        Raw::Len(b) => {
            String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Wire("string is not UTF-8"))
        }
        Raw::Varint(_) => Err(ProtobufError::Wire("expected a string")),
    }
}

fn varint(raw: &Raw<'_>) -> Result<u64, ProtobufError> {
    match raw {
        Raw::Varint(v) => Ok(*v),
        Raw::Len(_) => Err(ProtobufError::Wire("expected a varint")),
    }
}

fn len<'a>(raw: &Raw<'a>) -> Result<&'a [u8], ProtobufError> {
    match raw {
        Raw::Len(b) => Ok(b),
        Raw::Varint(_) => Err(ProtobufError::Wire("expected a message")),
    }
}

/// Decodes one value; None means "leave the field out" (an empty string or zero time,
/// which Kubernetes' JSON omits).
fn value(ty: &Ty, raw: &Raw<'_>) -> Result<Option<Value>, ProtobufError> {
    Ok(match ty {
        Ty::Str => Some(string(raw)?)
            .filter(|s| !s.is_empty())
            .map(Value::String),
        Ty::Bytes => Some(json!(
            base64::engine::general_purpose::STANDARD.encode(len(raw)?)
        )),
        Ty::Bool => Some(json!(varint(raw)? != 0)),
        Ty::I32 => Some(json!(varint(raw)? as i64 as i32)),
        Ty::I64 => Some(json!(varint(raw)? as i64)),
        Ty::ZBool | Ty::ZI32 | Ty::ZI64 => {
            let v = varint(raw)?;
            let out = match ty {
                Ty::ZBool => json!(v != 0),
                Ty::ZI32 => json!(v as i64 as i32),
                _ => json!(v as i64),
            };
            (v != 0).then_some(out)
        }
        Ty::Msg(name) => Some(message(name, len(raw)?)?),
        Ty::Time => {
            let mut secs = 0i64;
            for (n, f) in fields(len(raw)?)? {
                if n == 1 {
                    secs = varint(&f)? as i64;
                }
            }
            (secs != 0)
                .then(|| chrono::DateTime::from_timestamp(secs, 0))
                .flatten()
                .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        }
        Ty::Quantity => {
            let mut s = String::new();
            for (n, f) in fields(len(raw)?)? {
                if n == 1 {
                    s = string(&f)?;
                }
            }
            Some(json!(s))
        }
        Ty::IntOrString => {
            let (mut kind, mut int, mut text) = (0, 0i32, String::new());
            for (n, f) in fields(len(raw)?)? {
                match n {
                    1 => kind = varint(&f)?,
                    2 => int = varint(&f)? as i64 as i32,
                    3 => text = string(&f)?,
                    _ => {}
                }
            }
            Some(if kind == 1 { json!(text) } else { json!(int) })
        }
        Ty::Map(_) | Ty::Repeated(_) => return Err(ProtobufError::Wire("nested collection")),
    })
}

fn message(name: &'static str, buf: &[u8]) -> Result<Value, ProtobufError> {
    let schema = schema(name).ok_or(ProtobufError::Wire("unknown message"))?;
    let mut out = Map::new();
    for (num, raw) in fields(buf)? {
        let Some((_, field, ty)) = schema.iter().find(|(n, _, _)| *n == num) else {
            // Go's generated marshallers write every non-pointer field, zero or not; a
            // zero value of a field we do not model carries nothing and is skipped.
            match raw {
                Raw::Varint(0) => continue,
                Raw::Len([]) => continue,
                _ => {
                    return Err(ProtobufError::UnknownField {
                        message: name,
                        field: num,
                    })
                }
            }
        };
        match ty {
            Ty::Repeated(inner) => {
                let item = value(inner, &raw)?.unwrap_or(json!(""));
                let list = out.entry(field.to_string()).or_insert_with(|| json!([]));
                list.as_array_mut().expect("array").push(item);
            }
            Ty::Map(inner) => {
                let (mut k, mut v) = (String::new(), None);
                for (n, f) in fields(len(&raw)?)? {
                    match n {
                        1 => k = string(&f)?,
                        2 => v = value(inner, &f)?,
                        _ => {}
                    }
                }
                let map = out.entry(field.to_string()).or_insert_with(|| json!({}));
                map[k] = v.unwrap_or(json!(""));
            }
            _ => {
                if let Some(v) = value(ty, &raw)? {
                    out.insert(field.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `application/vnd.kubernetes.protobuf` object body into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(b"k8s\0").ok_or(ProtobufError::Magic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match n {
            1 => {
                for (m, g) in fields(len(&f)?)? {
                    match m {
                        1 => api_version = string(&g)?,
                        2 => kind = string(&g)?,
                        _ => {}
                    }
                }
            }
            2 => raw = len(&f)?,
            _ => {}
        }
    }
    let root = root_message(&kind).ok_or_else(|| ProtobufError::UnknownKind(kind.clone()))?;
    let mut obj = message(root, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(n: u64, wire: u64) -> Vec<u8> {
        enc_varint((n << 3) | wire)
    }

    fn enc_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = tag(n, 2);
        out.extend(enc_varint(payload.len() as u64));
        out.extend(payload);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let mut meta = field(1, b"cm");
        meta.extend(field(3, b""));
        let entry = [field(1, b"a"), field(2, b"b")].concat();
        let cm = [field(1, &meta), field(2, &entry)].concat();
        let tm = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend([field(1, &tm), field(2, &cm)].concat());
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "cm"}, "data": {"a": "b"},
                   "apiVersion": "v1", "kind": "ConfigMap"})
        );
        let mut bad = b"k8s\0".to_vec();
        let cm = [field(1, &meta), field(99, b"x")].concat();
        bad.extend([field(1, &tm), field(2, &cm)].concat());
        assert!(matches!(
            decode(&bad),
            Err(ProtobufError::UnknownField { field: 99, .. })
        ));
        assert_eq!(decode(b"{}"), Err(ProtobufError::Magic));
    }
}
