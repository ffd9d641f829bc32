//! The `/openapi/v2` document in protobuf, the only form kubectl reads: client-go's
//! `DiscoveryClient.OpenAPISchema` asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
//! and decodes the body as gnostic's `openapi_v2.Document` (a JSON body fails with
//! "proto: cannot parse invalid wire-format data"). kubectl uses it for
//! `kubectl explain --output plaintext-openapiv2` and as the fallback of field validation and
//! of client-side apply when the v3 documents fail.
//!
//! This is a hand-written encoder for the subset of gnostic's `OpenAPIv2.proto`
//! (github.com/google/gnostic-models, `openapiv2/OpenAPIv2.proto`) that our v2 JSON uses; field
//! numbers are noted at each message. Extension values are gnostic `Any{yaml}`; JSON is YAML,
//! so they carry their JSON text, which kube-openapi's `yaml.Unmarshal` reads back.

use serde_json::{Map, Value};

/// A protobuf message under construction.
#[derive(Default)]
struct Msg(Vec<u8>);

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A string field; proto3 leaves empty strings out.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn strings(&mut self, field: u32, v: &Value) {
        for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn bool(&mut self, field: u32, v: &Value) {
        if v.as_bool() == Some(true) {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: &Value) {
        if let Some(n) = v.as_i64().filter(|n| *n != 0) {
            self.key(field, VARINT);
            self.varint(n as u64);
        }
    }

    fn double(&mut self, field: u32, v: &Value) {
        if let Some(f) = v.as_f64() {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&f.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// gnostic `Any { string yaml = 2; }` holding `v` as JSON text.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &v.to_string());
    m
}

/// `NamedAny { name = 1; Any value = 2; }` for every `x-` key of `obj`.
fn vendor_extensions(m: &mut Msg, field: u32, obj: &Map<String, Value>) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Msg::default();
        named.string(1, k);
        named.message(2, any(v));
        m.message(field, named);
    }
}

/// `Schema` (fields 1–31).
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(obj) = v.as_object() else { return m };
    m.string(1, text(&v["$ref"]));
    m.string(2, text(&v["format"]));
    m.string(3, text(&v["title"]));
    m.string(4, text(&v["description"]));
    if let Some(d) = obj.get("default") {
        m.message(5, any(d));
    }
    m.double(7, &v["maximum"]);
    m.double(9, &v["minimum"]);
    m.int64(11, &v["maxLength"]);
    m.int64(12, &v["minLength"]);
    m.string(13, text(&v["pattern"]));
    m.int64(14, &v["maxItems"]);
    m.int64(15, &v["minItems"]);
    m.bool(16, &v["uniqueItems"]);
    m.strings(19, &v["required"]);
    for e in v["enum"].as_array().into_iter().flatten() {
        m.message(20, any(e));
    }
    match &v["additionalProperties"] {
        Value::Object(_) => {
            let mut item = Msg::default();
            item.message(1, schema(&v["additionalProperties"]));
            m.message(21, item);
        }
        Value::Bool(b) => {
            let mut item = Msg::default();
            item.bool(2, &Value::Bool(*b));
            m.message(21, item);
        }
        _ => {}
    }
    if let Some(ty) = v["type"].as_str() {
        let mut item = Msg::default();
        item.string(1, ty);
        m.message(22, item);
    }
    if v["items"].is_object() {
        let mut item = Msg::default();
        item.message(1, schema(&v["items"]));
        m.message(23, item);
    }
    for s in v["allOf"].as_array().into_iter().flatten() {
        m.message(24, schema(s));
    }
    if let Some(props) = v["properties"].as_object() {
        let mut p = Msg::default();
        for (name, s) in props {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, schema(s));
            p.message(1, named);
        }
        m.message(25, p);
    }
    m.bool(27, &v["readOnly"]);
    vendor_extensions(&mut m, 31, obj);
    m
}

/// `ParametersItem { Parameter parameter = 1; }` with `Parameter { BodyParameter = 1;
/// NonBodyParameter = 2; }`.
fn parameter(p: &Value) -> Msg {
    let mut param = Msg::default();
    match text(&p["in"]) {
        "body" => {
            // BodyParameter { description = 1; name = 2; in = 3; required = 4; schema = 5; }
            let mut body = Msg::default();
            body.string(1, text(&p["description"]));
            body.string(2, text(&p["name"]));
            body.string(3, "body");
            body.bool(4, &p["required"]);
            body.message(5, schema(&p["schema"]));
            param.message(1, body);
        }
        location => {
            // Query/PathParameterSubSchema: required = 1; in = 2; description = 3; name = 4;
            // type = 6 / 5; unique_items = 20 / 19.
            let (oneof_field, type_field, unique_field) = match location {
                "path" => (4, 5, 19),
                _ => (3, 6, 20),
            };
            let mut sub = Msg::default();
            sub.bool(1, &p["required"]);
            sub.string(2, location);
            sub.string(3, text(&p["description"]));
            sub.string(4, text(&p["name"]));
            sub.string(type_field, text(&p["type"]));
            sub.bool(unique_field, &p["uniqueItems"]);
            let mut non_body = Msg::default();
            non_body.message(oneof_field, sub);
            param.message(2, non_body);
        }
    }
    let mut item = Msg::default();
    item.message(1, param);
    item
}

/// `Responses { repeated NamedResponseValue response_code = 1; }`.
fn responses(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (code, r) in v.as_object().into_iter().flatten() {
        // Response { description = 1; SchemaItem schema = 2; }, SchemaItem { Schema schema = 1; }
        let mut response = Msg::default();
        response.string(1, text(&r["description"]));
        if r["schema"].is_object() {
            let mut item = Msg::default();
            item.message(1, schema(&r["schema"]));
            response.message(2, item);
        }
        let mut value = Msg::default();
        value.message(1, response);
        let mut named = Msg::default();
        named.string(1, code);
        named.message(2, value);
        m.message(1, named);
    }
    m
}

/// `Operation` (tags = 1, description = 3, operation_id = 5, produces = 6, consumes = 7,
/// parameters = 8, responses = 9, schemes = 10, vendor_extension = 13).
fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    m.strings(1, &op["tags"]);
    m.string(3, text(&op["description"]));
    m.string(5, text(&op["operationId"]));
    m.strings(6, &op["produces"]);
    m.strings(7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.message(8, parameter(p));
    }
    m.message(9, responses(&op["responses"]));
    m.strings(10, &op["schemes"]);
    if let Some(obj) = op.as_object() {
        vendor_extensions(&mut m, 13, obj);
    }
    m
}

/// `PathItem` (get = 2, put = 3, post = 4, delete = 5, patch = 8, parameters = 9).
fn path_item(item: &Value) -> Msg {
    let mut m = Msg::default();
    for (method, field) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("patch", 8),
    ] {
        if item[method].is_object() {
            m.message(field, operation(&item[method]));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        m.message(9, parameter(p));
    }
    m
}

/// Encodes a Swagger 2.0 JSON document as gnostic `Document` (swagger = 1, info = 2,
/// paths = 8, definitions = 9).
pub(super) fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.string(1, text(&doc["swagger"]));
    let mut info = Msg::default();
    info.string(1, text(&doc["info"]["title"]));
    info.string(2, text(&doc["info"]["version"]));
    m.message(2, info);
    let mut paths = Msg::default();
    for (name, item) in doc["paths"].as_object().into_iter().flatten() {
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, path_item(item));
        paths.message(2, named);
    }
    m.message(8, paths);
    let mut definitions = Msg::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, schema(s));
        definitions.message(1, named);
    }
    m.message(9, definitions);
    m.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A minimal protobuf reader: the (field, wire type, payload) triples of one message.
    fn fields(mut b: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u32);
            let payload = match wire {
                VARINT => varint(&mut b).to_le_bytes().to_vec(),
                FIXED64 => {
                    let (p, rest) = b.split_at(8);
                    b = rest;
                    p.to_vec()
                }
                LEN => {
                    let n = varint(&mut b) as usize;
                    let (p, rest) = b.split_at(n);
                    b = rest;
                    p.to_vec()
                }
                other => panic!("unexpected wire type {other}"),
            };
            out.push((field, wire, payload));
        }
        out
    }

    fn field(b: &[u8], n: u32) -> Vec<Vec<u8>> {
        fields(b)
            .into_iter()
            .filter(|f| f.0 == n)
            .map(|f| f.2)
            .collect()
    }

    #[test]
    fn varints_and_strings_use_protobuf_wire_format() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
        let mut m = Msg::default();
        m.string(1, "2.0");
        m.string(3, "");
        assert_eq!(m.0, [0x0a, 3, b'2', b'.', b'0']);
    }

    #[test]
    fn schema_carries_ref_type_properties_and_extensions() {
        let s = json!({
            "description": "d",
            "type": "object",
            "required": ["a"],
            "properties": { "a": { "type": "array", "items": { "$ref": "#/definitions/X" } } },
            "x-kubernetes-group-version-kind": [{ "group": "", "kind": "Pod", "version": "v1" }]
        });
        let b = schema(&s).0;
        assert_eq!(field(&b, 4), [b"d".to_vec()]);
        assert_eq!(field(&field(&b, 22)[0], 1), [b"object".to_vec()]);
        assert_eq!(field(&b, 19), [b"a".to_vec()]);
        let prop = &field(&field(&b, 25)[0], 1)[0];
        assert_eq!(field(prop, 1), [b"a".to_vec()]);
        let items = &field(&field(prop, 2)[0], 23)[0];
        assert_eq!(field(&field(items, 1)[0], 1), [b"#/definitions/X".to_vec()]);
        let ext = &field(&b, 31)[0];
        assert_eq!(field(ext, 1), [b"x-kubernetes-group-version-kind".to_vec()]);
        let yaml = String::from_utf8(field(&field(ext, 2)[0], 2)[0].clone()).unwrap();
        let parsed: Value = serde_json::from_str(&yaml).unwrap();
        assert_eq!(parsed[0]["kind"], "Pod");
    }

    #[test]
    fn patch_operation_lists_field_validation_as_a_query_parameter() {
        let doc = &super::super::v2_document().value;
        let b = encode(doc);
        assert_eq!(field(&b, 1), [b"2.0".to_vec()]);
        let paths = &field(&b, 8)[0];
        let item = field(paths, 2)
            .into_iter()
            .find(|p| field(p, 1)[0] == b"/api/v1/namespaces/{namespace}/pods/{name}")
            .expect("pod item path");
        let patch = &field(&field(&item, 2)[0], 8)[0];
        let query_names: Vec<Vec<u8>> = field(patch, 8)
            .iter()
            .flat_map(|p| field(&field(p, 1)[0], 2))
            .flat_map(|nb| field(&nb, 3))
            .flat_map(|q| field(&q, 4))
            .collect();
        assert!(query_names.contains(&b"fieldValidation".to_vec()));
        let definitions = &field(&b, 9)[0];
        assert!(field(definitions, 1)
            .iter()
            .any(|d| field(d, 1)[0] == b"io.k8s.api.core.v1.Pod"));
    }
}
