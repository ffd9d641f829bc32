//! Resource quantities (`100m`, `64Mi`, `1.5G`, `2e3`) parsed to exact integers (millicores,
//! bytes), and pod request/limit sums as the scheduler and the nodelet count them.
//!
//! The grammar is Kubernetes' (`k8s.io/apimachinery/pkg/api/resource`):
//! `<sign><digits>[.<digits>]<suffix>` where the suffix is a binary SI one (`Ki` … `Ei`), a
//! decimal SI one (`n u m "" k M G T P E`) or a decimal exponent (`e3`, `E-2`). Like
//! `Quantity.Value()` and `Quantity.MilliValue()`, scaling to a coarser unit rounds up.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Why a quantity string could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantityError {
    #[error("quantity {0:?} is empty")]
    Empty(String),
    #[error("quantity {0:?} has no digits")]
    NoDigits(String),
    #[error("quantity {0:?} has an unknown suffix")]
    UnknownSuffix(String),
    #[error("quantity {0:?} is too large")]
    Overflow(String),
}

/// A parsed quantity: `mantissa * 10^exp10 * 1024^exp1024`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    mantissa: i128,
    exp10: i32,
    exp1024: u32,
}

fn parse(text: &str) -> Result<Parsed, QuantityError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty(text.to_string()));
    }
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::NoDigits(text.to_string()));
    }
    if frac_part.contains('.') {
        return Err(QuantityError::NoDigits(text.to_string()));
    }
    let overflow = || QuantityError::Overflow(text.to_string());
    let mut mantissa: i128 = 0;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(digit - b'0')))
            .ok_or_else(overflow)?;
    }
    let (suffix_exp10, exp1024) = suffix_scale(suffix, text)?;
    let exp10 = suffix_exp10 - i32::try_from(frac_part.len()).map_err(|_| overflow())?;
    Ok(Parsed {
        mantissa: if negative { -mantissa } else { mantissa },
        exp10,
        exp1024,
    })
}

/// The scale a suffix stands for, as (power of ten, power of 1024).
fn suffix_scale(suffix: &str, text: &str) -> Result<(i32, u32), QuantityError> {
    let unknown = || QuantityError::UnknownSuffix(text.to_string());
    let scale = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(unknown)?;
            let exp: i32 = exp.parse().map_err(|_| unknown())?;
            if !(-64..=64).contains(&exp) {
                return Err(QuantityError::Overflow(text.to_string()));
            }
            (exp, 0)
        }
    };
    Ok(scale)
}

/// The quantity in units of `10^unit_exp10`, rounded up (towards +∞) like `ScaledValue`.
fn scaled(text: &str, unit_exp10: i32) -> Result<i64, QuantityError> {
    let p = parse(text)?;
    let overflow = || QuantityError::Overflow(text.to_string());
    let mut value = p.mantissa;
    for _ in 0..p.exp1024 {
        value = value.checked_mul(1024).ok_or_else(overflow)?;
    }
    let shift = p.exp10 - unit_exp10;
    if shift >= 0 {
        let factor = 10i128.checked_pow(shift as u32).ok_or_else(overflow)?;
        value = value.checked_mul(factor).ok_or_else(overflow)?;
    } else {
        let Some(divisor) = 10i128.checked_pow(shift.unsigned_abs()) else {
            // Smaller than any representable unit: rounds up to 1 when positive.
            return Ok(i64::from(value > 0));
        };
        let quotient = value.div_euclid(divisor);
        value = if value.rem_euclid(divisor) == 0 {
            quotient
        } else {
            quotient + 1
        };
    }
    i64::try_from(value).map_err(|_| overflow())
}

/// The quantity in thousandths (`MilliValue`): `100m` → 100, `1.5` → 1500.
pub fn milli_value(q: &Quantity) -> Result<i64, QuantityError> {
    scaled(&q.0, -3)
}

/// The quantity in whole units (`Value`), rounded up: `64Mi` → 67108864, `1G` → 10^9.
pub fn value(q: &Quantity) -> Result<i64, QuantityError> {
    scaled(&q.0, 0)
}

/// CPU and memory of a pod as the scheduler counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu_millis: i64,
    /// Bytes.
    pub memory_bytes: i64,
}

impl Resources {
    fn add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    fn max(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
        }
    }

    /// Reads `cpu` and `memory` from a resource map (a missing or unreadable entry counts 0).
    pub fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let get = |name: &str, f: fn(&Quantity) -> Result<i64, QuantityError>| {
            map.and_then(|m| m.get(name))
                .and_then(|q| f(q).ok())
                .unwrap_or(0)
        };
        Resources {
            cpu_millis: get("cpu", milli_value),
            memory_bytes: get("memory", value),
        }
    }
}

/// Which side of `resources` to sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Requests,
    Limits,
}

fn container_resources(c: &Container, side: Side) -> Resources {
    let reqs: Option<&ResourceRequirements> = c.resources.as_ref();
    let map = reqs.and_then(|r| match side {
        Side::Requests => r.requests.as_ref(),
        Side::Limits => r.limits.as_ref(),
    });
    Resources::from_map(map)
}

/// A pod's effective requests or limits the way Kubernetes counts them
/// (`k8s.io/component-helpers/resource.PodRequests`): the sum over app containers, or the
/// largest init container if that is larger — where restartable init containers (sidecars,
/// `restartPolicy: Always`) keep running, so they add to everything started after them and to
/// the app containers — plus `spec.overhead`.
pub fn pod_resources(spec: &PodSpec, side: Side) -> Resources {
    pod_resources_with(spec, |c| container_resources(c, side))
}

/// Like [`pod_resources`], with each container's amount chosen by `per_container` (the
/// scheduler's scoring substitutes defaults for containers that request nothing).
pub fn pod_resources_with(
    spec: &PodSpec,
    per_container: impl Fn(&Container) -> Resources,
) -> Resources {
    let apps = spec
        .containers
        .iter()
        .map(&per_container)
        .fold(Resources::default(), Resources::add);
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for init in spec.init_containers.iter().flatten() {
        let own = per_container(init);
        if init.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.add(own);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars.add(own));
        }
    }
    let overhead = Resources::from_map(spec.overhead.as_ref());
    apps.add(sidecars).max(init_peak).add(overhead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn milli_values() {
        let cases = [
            ("100m", 100),
            ("1", 1000),
            ("1.5", 1500),
            ("0.1", 100),
            ("2e3", 2_000_000),
            ("2E-3", 2),
            ("1k", 1_000_000),
            ("250u", 1), // rounds up like MilliValue
            ("-100m", -100),
            ("+2", 2000),
            (".5", 500),
            ("5.", 5000),
        ];
        for (text, want) in cases {
            assert_eq!(milli_value(&q(text)), Ok(want), "{text}");
        }
    }

    #[test]
    fn byte_values() {
        let cases = [
            ("64Mi", 64 * 1024 * 1024),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("123Mi", 128_974_848),
            ("0.5", 1),  // rounds up
            ("100m", 1), // rounds up
            ("1Ei", 1 << 60),
        ];
        for (text, want) in cases {
            assert_eq!(value(&q(text)), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_bad_quantities() {
        assert!(matches!(value(&q("")), Err(QuantityError::Empty(_))));
        assert!(matches!(value(&q("Mi")), Err(QuantityError::NoDigits(_))));
        assert!(matches!(
            value(&q("1.2.3")),
            Err(QuantityError::UnknownSuffix(_)) | Err(QuantityError::NoDigits(_))
        ));
        assert!(matches!(
            value(&q("12Xi")),
            Err(QuantityError::UnknownSuffix(_))
        ));
        assert!(matches!(
            value(&q("1e")),
            Err(QuantityError::UnknownSuffix(_))
        ));
        assert!(matches!(value(&q("9Ei")), Err(QuantityError::Overflow(_))));
        assert!(matches!(value(&q("1e99")), Err(QuantityError::Overflow(_))));
    }

    fn container(cpu: &str, mem: &str) -> Container {
        let mut requests = BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), q(cpu));
        }
        if !mem.is_empty() {
            requests.insert("memory".to_string(), q(mem));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sidecar(cpu: &str, mem: &str) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(cpu, mem)
        }
    }

    fn res(cpu_millis: i64, memory_bytes: i64) -> Resources {
        Resources {
            cpu_millis,
            memory_bytes,
        }
    }

    #[test]
    fn pod_request_sums() {
        let mi = 1024 * 1024;
        let cases: Vec<(&str, PodSpec, Resources)> = vec![
            (
                "sum of app containers",
                PodSpec {
                    containers: vec![container("100m", "64Mi"), container("200m", "")],
                    ..Default::default()
                },
                res(300, 64 * mi),
            ),
            (
                "init container larger than the sum wins per resource",
                PodSpec {
                    containers: vec![container("100m", "64Mi"), container("100m", "64Mi")],
                    init_containers: Some(vec![container("1", "32Mi"), container("50m", "")]),
                    ..Default::default()
                },
                res(1000, 128 * mi),
            ),
            (
                "sidecars add to app containers and to later init containers",
                PodSpec {
                    containers: vec![container("100m", "10Mi")],
                    init_containers: Some(vec![sidecar("200m", "20Mi"), container("500m", "5Mi")]),
                    ..Default::default()
                },
                res(700, 30 * mi),
            ),
            (
                "overhead is added",
                PodSpec {
                    containers: vec![container("100m", "10Mi")],
                    overhead: Some(BTreeMap::from([("cpu".to_string(), q("250m"))])),
                    ..Default::default()
                },
                res(350, 10 * mi),
            ),
            ("no requests", PodSpec::default(), res(0, 0)),
        ];
        for (name, spec, want) in cases {
            assert_eq!(pod_resources(&spec, Side::Requests), want, "{name}");
        }
    }

    #[test]
    fn limits_are_summed_the_same_way() {
        let mut c = container("", "");
        c.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_string(), q("1Gi"))])),
            ..Default::default()
        });
        let spec = PodSpec {
            containers: vec![c.clone(), c],
            ..Default::default()
        };
        assert_eq!(pod_resources(&spec, Side::Limits), res(0, 2 << 30));
        assert_eq!(pod_resources(&spec, Side::Requests), res(0, 0));
    }
}
