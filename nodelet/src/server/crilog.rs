//! Reading CRI-format container logs (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`, the cri-api
//! "container log format") the way the kubelet's `ReadLogs` does: partial (`P`) records are
//! joined with the final (`F`) record of the same stream, `tailLines` counts whole lines from
//! the end, `sinceSeconds`/`sinceTime` drop older lines, `limitBytes` caps the body, and
//! `timestamps` prefixes each line with its RFC3339Nano time.

use chrono::{DateTime, Utc};

/// The log options of a `containerLogs` request (kubelet's `PodLogOptions`).
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub limit_bytes: Option<usize>,
}

/// One record of a log file.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one line of a log file (without its trailing newline); None if malformed.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let stream = std::str::from_utf8(fields.next()?).ok()?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let tag = fields.next()?;
    // The tag may carry more flags separated by ':' in future; the first is F or P.
    let partial = match tag.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        partial,
        content: fields.next().unwrap_or(b""),
    })
}

/// Joins partial records into whole lines and renders them for the response body.
#[derive(Default)]
pub struct Assembler {
    /// Unfinished line per stream (stdout, stderr): its first record's time and the bytes.
    pending: [Option<(String, Vec<u8>)>; 2],
}

/// A whole line ready to send: its time and its rendered bytes (ending in '\n').
pub struct Line {
    pub time: Option<DateTime<Utc>>,
    pub bytes: Vec<u8>,
}

impl Assembler {
    /// Feeds one raw record line; returns the finished line when this record ends one.
    pub fn push(&mut self, raw: &[u8], timestamps: bool) -> Option<Line> {
        let rec = parse(raw)?;
        let slot = &mut self.pending[usize::from(rec.stream == "stderr")];
        let (time, mut bytes) = slot
            .take()
            .unwrap_or_else(|| (rec.time.to_string(), Vec::new()));
        bytes.extend_from_slice(rec.content);
        if rec.partial {
            *slot = Some((time, bytes));
            return None;
        }
        bytes.push(b'\n');
        let parsed = DateTime::parse_from_rfc3339(&time)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        if timestamps {
            let mut out = Vec::with_capacity(time.len() + 1 + bytes.len());
            out.extend_from_slice(time.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&bytes);
            bytes = out;
        }
        Some(Line {
            time: parsed,
            bytes,
        })
    }
}

/// Whether a line passes the `since` filter (lines without a parsable time pass).
pub fn after(line: &Line, since: Option<DateTime<Utc>>) -> bool {
    match (since, line.time) {
        (Some(s), Some(t)) => t >= s,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let r = parse(b"2024-01-01T00:00:00.000000001Z stdout F hello world").unwrap();
        assert_eq!(r.stream, "stdout");
        assert!(!r.partial);
        assert_eq!(r.content, b"hello world");
        let r = parse(b"2024-01-01T00:00:00Z stderr P ").unwrap();
        assert!(r.partial);
        assert_eq!(r.content, b"");
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-01-01T00:00:00Z stdin F x").is_none());
    }

    #[test]
    fn joins_partials_per_stream_and_prefixes_timestamps() {
        let mut a = Assembler::default();
        assert!(a
            .push(b"2024-01-01T00:00:01Z stdout P abc", false)
            .is_none());
        let e = a.push(b"2024-01-01T00:00:02Z stderr F err", false).unwrap();
        assert_eq!(e.bytes, b"err\n");
        let l = a.push(b"2024-01-01T00:00:03Z stdout F def", true).unwrap();
        assert_eq!(l.bytes, b"2024-01-01T00:00:01Z abcdef\n");
        let since = DateTime::parse_from_rfc3339("2024-01-01T00:00:02Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            !after(&l, Some(since)),
            "the line's time is its first part's"
        );
        assert!(after(&e, Some(since)));
    }
}
