//! What the monitor writes when the container's init has exited: `exit.json` (read back by
//! `oci::state::ExitRecord`), with an RFC 3339 timestamp, and the pieces it parses to fill it
//! (the init's last message on its socket, the cgroup's OOM kill count). Plain std, no crates:
//! this file is compiled into the static `minik8s-monitor` and, for its tests and the runtime's
//! timestamps, into the runtime crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 in UTC with nanoseconds (`2026-12-07T05:36:10.123456789Z`), the form of CRI
/// log timestamps and of `finishedAt`.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The JSON of `oci::state::ExitRecord`.
pub fn exit_json(
    exit_code: i32,
    signal: Option<i32>,
    oom_killed: bool,
    finished_at: &str,
    error: Option<&str>,
) -> String {
    let signal = signal.map_or_else(|| "null".to_string(), |s| s.to_string());
    let mut json = format!(
        "{{\"exitCode\":{exit_code},\"signal\":{signal},\"oomKilled\":{oom_killed},\"finishedAt\":{}",
        json_string(finished_at)
    );
    if let Some(e) = error {
        json.push_str(",\"error\":");
        json.push_str(&json_string(e));
    }
    json.push('}');
    json
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The tag of an error frame on the init's socket (`oci::channel`: tag byte, u32 length in
/// little endian, payload).
const TAG_ERROR: u8 = 4;

/// The message of an error frame at the start of `bytes` (what the init sends when the exec
/// after `start` fails).
pub fn error_in_frame(bytes: &[u8]) -> Option<String> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != TAG_ERROR || rest.len() < 4 {
        return None;
    }
    let len = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
    let payload = rest[4..].get(..len)?;
    Some(String::from_utf8_lossy(payload).into_owned())
}

/// The value of `key` in a cgroup "flat keyed" file (`memory.events`, `memory.oom_control`).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_match_chrono_across_the_calendar() {
        // Epoch, leap days, century rules (2000 is leap, 2100 is not), year ends, far future.
        for secs in [
            0u64,
            951_782_400,   // 2000-02-29
            1_709_164_800, // 2024-02-29
            1_735_689_599, // 2024-12-31T23:59:59
            4_107_542_400, // 2100-03-01
            253_402_300_799,
        ] {
            for nanos in [0u32, 1, 999_999_999] {
                let t = UNIX_EPOCH + Duration::new(secs, nanos);
                let want = chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                assert_eq!(rfc3339_nanos(t), want);
            }
        }
    }

    #[test]
    fn exit_json_reads_back_as_the_runtime_exit_record() {
        let json = exit_json(137, Some(9), true, "2026-12-07T05:36:10.000000001Z", None);
        let r: crate::oci::state::ExitRecord = serde_json::from_str(&json).unwrap();
        assert_eq!((r.exit_code, r.signal, r.oom_killed), (137, Some(9), true));
        assert_eq!(r.finished_at, "2026-12-07T05:36:10.000000001Z");
        assert_eq!(r.error, None);

        let msg = "exec \"/bin/nope\": no such file\n\ttab \u{1} é";
        let json = exit_json(127, None, false, "t", Some(msg));
        let r: crate::oci::state::ExitRecord = serde_json::from_str(&json).unwrap();
        assert_eq!((r.exit_code, r.signal), (127, None));
        assert_eq!(r.error.as_deref(), Some(msg));
    }

    #[test]
    fn error_frames_from_the_init_channel_are_read() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sent = crate::oci::channel::Message::Error("exec: no such file".into());
        crate::oci::channel::send(std::os::fd::AsFd::as_fd(&a), &sent).unwrap();
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut &b, &mut buf).unwrap();
        assert_eq!(
            error_in_frame(&buf[..n]).as_deref(),
            Some("exec: no such file")
        );
        let ready = crate::oci::channel::Message::Ready;
        crate::oci::channel::send(std::os::fd::AsFd::as_fd(&a), &ready).unwrap();
        let n = std::io::Read::read(&mut &b, &mut buf).unwrap();
        assert_eq!(error_in_frame(&buf[..n]), None);
        assert_eq!(error_in_frame(&[4, 9, 0, 0, 0, b'x']), None); // cut short
    }

    #[test]
    fn oom_kills_are_read_from_both_cgroup_layouts() {
        let v2 = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n";
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(1));
        assert_eq!(keyed_value(v1, "oom_kill"), Some(4));
        assert_eq!(keyed_value("oom 2\n", "oom_kill"), None);
    }
}
