//! The pod-template-hash label (Kubernetes' ComputeHash): a hash of the pod template,
//! rendered with the same "safe" alphabet Kubernetes uses so it never spells words.

use k8s_openapi::api::core::v1::PodTemplateSpec;

pub const HASH_LABEL: &str = "pod-template-hash";

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a (32-bit) of the template's JSON (struct fields in fixed order, maps sorted), plus
/// the collision count when set, encoded like Kubernetes' rand.SafeEncodeString.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&json);
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// The template without the hash label, for comparing a ReplicaSet's template with the
/// Deployment's (Kubernetes' EqualIgnoreHash).
pub fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn stable_and_sensitive() {
        let mut t = PodTemplateSpec::default();
        let a = template_hash(&t, None);
        assert_eq!(a, template_hash(&t, None));
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        t.metadata = Some(ObjectMeta {
            annotations: Some([("x".to_string(), "y".to_string())].into()),
            ..Default::default()
        });
        assert_ne!(a, template_hash(&t, None));
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
    }
}
