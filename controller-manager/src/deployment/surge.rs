//! maxSurge / maxUnavailable as absolute numbers (Kubernetes' ResolveFenceposts): a percentage
//! of replicas, surge rounded up and unavailable rounded down; both zero means one unavailable.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Default of both fields in apps/v1.
const DEFAULT: &str = "25%";

fn scaled(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match value {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => percent(s, total, round_up),
        None => percent(DEFAULT, total, round_up),
    }
}

fn percent(s: &str, total: i32, round_up: bool) -> i32 {
    let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return s.parse().unwrap_or(0);
    };
    let product = p * i64::from(total);
    let v = if round_up {
        (product + 99) / 100
    } else {
        product / 100
    };
    v as i32
}

/// (maxSurge, maxUnavailable) for `replicas`.
pub fn resolve(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let surge = scaled(max_surge, replicas, true).max(0);
    let mut unavailable = scaled(max_unavailable, replicas, false).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn rounding_and_defaults() {
        assert_eq!(resolve(None, None, 10), (3, 2));
        assert_eq!(resolve(Some(&s("50%")), Some(&s("50%")), 3), (2, 1));
        assert_eq!(
            resolve(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(
            resolve(Some(&IntOrString::Int(2)), Some(&s("0%")), 4),
            (2, 0)
        );
    }
}
