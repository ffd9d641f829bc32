//! The on-disk layout of the sled store.
//!
//! One sled tree holds everything so that a single atomic `apply_batch` can write the
//! objects of a group commit together with the revision counter. User keys are stored
//! behind a one-byte namespace tag so that no user key can collide with the metadata:
//! `k<key>` for objects, `m<name>` for metadata (today only `mrevision`).
//!
//! A stored value is a small header followed by the opaque object bytes:
//! `[format: u8 = 1][create_revision: u64 BE][mod_revision: u64 BE][value...]`.
//! Keeping both revisions with the value lets `get`/`list` return full `KeyValue`s and a
//! delete report the value it removed, as etcd's mvcc `KeyValue` does.

use super::{KeyValue, Revision};

const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 8;

/// Tag byte in front of every object key.
pub const OBJECT_TAG: u8 = b'k';
/// The key holding the global revision (u64 BE).
pub const REVISION_KEY: &[u8] = b"mrevision";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("stored key {key:?} is not valid utf-8")]
    KeyNotUtf8 { key: Vec<u8> },
    #[error("stored value of {key} is too short ({len} bytes) for its header")]
    ValueTooShort { key: String, len: usize },
    #[error("stored value of {key} has unknown format {format}")]
    UnknownFormat { key: String, format: u8 },
    #[error("stored revision counter has {len} bytes, expected 8")]
    BadRevision { len: usize },
}

/// The sled key for a user key.
pub fn object_key(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(OBJECT_TAG);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Encodes a KeyValue as header + value.
pub fn encode_value(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + kv.value.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&kv.create_revision.to_be_bytes());
    out.extend_from_slice(&kv.mod_revision.to_be_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a stored (sled key, sled value) pair of the object namespace.
pub fn decode_object(raw_key: &[u8], raw_value: &[u8]) -> Result<KeyValue, RecordError> {
    let user_key = raw_key.strip_prefix(&[OBJECT_TAG]).unwrap_or(raw_key);
    let key = std::str::from_utf8(user_key)
        .map_err(|_| RecordError::KeyNotUtf8 {
            key: raw_key.to_vec(),
        })?
        .to_owned();
    if raw_value.len() < HEADER_LEN {
        return Err(RecordError::ValueTooShort {
            key,
            len: raw_value.len(),
        });
    }
    if raw_value[0] != FORMAT_V1 {
        return Err(RecordError::UnknownFormat {
            key,
            format: raw_value[0],
        });
    }
    let create_revision = read_u64(&raw_value[1..9]);
    let mod_revision = read_u64(&raw_value[9..17]);
    Ok(KeyValue {
        key,
        value: raw_value[HEADER_LEN..].to_vec(),
        create_revision,
        mod_revision,
    })
}

pub fn encode_revision(revision: Revision) -> [u8; 8] {
    revision.to_be_bytes()
}

pub fn decode_revision(raw: &[u8]) -> Result<Revision, RecordError> {
    if raw.len() != 8 {
        return Err(RecordError::BadRevision { len: raw.len() });
    }
    Ok(read_u64(raw))
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_with_both_revisions() {
        let kv = KeyValue {
            key: "/registry/pods/default/a".into(),
            value: b"{\"kind\":\"Pod\"}".to_vec(),
            create_revision: 7,
            mod_revision: u64::MAX - 1,
        };
        let decoded = decode_object(&object_key(&kv.key), &encode_value(&kv)).unwrap();
        assert_eq!(decoded, kv);
    }

    #[test]
    fn empty_value_round_trips() {
        let kv = KeyValue {
            key: "k".into(),
            value: vec![],
            create_revision: 1,
            mod_revision: 1,
        };
        assert_eq!(decode_object(b"kk", &encode_value(&kv)).unwrap(), kv);
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        assert!(matches!(
            decode_object(b"ka", &[1, 2, 3]),
            Err(RecordError::ValueTooShort { len: 3, .. })
        ));
        let mut bad = encode_value(&KeyValue {
            key: "a".into(),
            value: vec![1],
            create_revision: 1,
            mod_revision: 1,
        });
        bad[0] = 9;
        assert!(matches!(
            decode_object(b"ka", &bad),
            Err(RecordError::UnknownFormat { format: 9, .. })
        ));
        assert!(matches!(
            decode_object(&[b'k', 0xff, 0xfe], &bad),
            Err(RecordError::KeyNotUtf8 { .. })
        ));
        assert!(decode_revision(&[1, 2]).is_err());
        assert_eq!(decode_revision(&encode_revision(42)).unwrap(), 42);
    }
}
