//! Resource quantities (`resource.Quantity`): parsing to a number for comparisons.
//!
//! Grammar (apimachinery `resource.ParseQuantity`): `[+-]digits[.digits][suffix]` where the suffix
//! is a binary SI suffix (`Ki`..`Ei`), a decimal SI suffix (`n`, `u`, `m`, `k`, `M`..`E`) or a
//! decimal exponent (`e3`, `E-2`).

/// The message apimachinery gives for a string that is not a quantity.
pub(crate) const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a quantity into its value (cores, bytes, ...); `None` when it is not one.
pub(crate) fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let number_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    Some(value * multiplier(suffix)?)
}

fn multiplier(suffix: &str) -> Option<f64> {
    let binary = |p: i32| Some(1024f64.powi(p));
    let decimal = |p: i32| Some(10f64.powi(p));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.trim_start_matches(['+', '-']);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            decimal(exp.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases = [
            ("1", 1.0),
            ("500m", 0.5),
            ("1.5", 1.5),
            ("64Mi", 64.0 * 1024.0 * 1024.0),
            ("1G", 1e9),
            ("2e3", 2000.0),
            ("+1k", 1000.0),
            ("-1", -1.0),
        ];
        for (s, v) in cases {
            let parsed = parse_quantity(s).unwrap_or_else(|| panic!("{s}"));
            assert!((parsed - v).abs() < 1e-6, "{s}: {parsed} != {v}");
        }
        for bad in ["", "abc", "1Zi", "1.2.3", "m", "1e", "1 Gi"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }
}
