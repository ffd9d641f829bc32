//! CRI-format container logs, as the kubelet reads them (cri-api "container log format"):
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>\n`. A line longer than [`MAX_LINE`] is
//! split into `P` (partial) records followed by a final `F` record, like containerd does.
//!
//! Plain std, no crates: compiled into the static `minik8s-monitor` and into the runtime crate
//! (the runc backend's log copier uses it too).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Longest line written as one record; longer lines are split (containerd's default is 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Appends records to one log file, keeping each stream's unfinished line.
pub struct CriLog<W: Write> {
    out: W,
    pending: [Vec<u8>; 2],
    buf: Vec<u8>,
}

impl CriLog<File> {
    pub fn open(path: &Path) -> std::io::Result<CriLog<File>> {
        Ok(CriLog::new(open_append(path)?))
    }

    /// Continues in a fresh file at `path` (CRI ReopenContainerLog, after the kubelet renamed
    /// the old one for rotation). Unfinished lines carry over; on error the old file is kept.
    pub fn reopen(&mut self, path: &Path) -> std::io::Result<()> {
        self.out = open_append(path)?;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path) // std opens with O_CLOEXEC
}

impl<W: Write> CriLog<W> {
    pub fn new(out: W) -> CriLog<W> {
        CriLog {
            out,
            pending: [Vec::new(), Vec::new()],
            buf: Vec::new(),
        }
    }

    /// Logs a chunk read from a stream: every complete line becomes an `F` record.
    pub fn feed(&mut self, stream: Stream, data: &[u8], now: &str) -> std::io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending[stream.index()]);
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            pending.extend_from_slice(&rest[..nl]);
            self.split_partials(stream, &mut pending, now, MAX_LINE + 1);
            self.record(stream, "F", &pending, now);
            pending.clear();
            rest = &rest[nl + 1..];
        }
        pending.extend_from_slice(rest);
        self.split_partials(stream, &mut pending, now, MAX_LINE);
        self.pending[stream.index()] = pending;
        self.flush()
    }

    /// Emits `P` records of MAX_LINE bytes while at least `threshold` bytes are pending.
    fn split_partials(
        &mut self,
        stream: Stream,
        pending: &mut Vec<u8>,
        now: &str,
        threshold: usize,
    ) {
        while pending.len() >= threshold {
            let tail = pending.split_off(MAX_LINE);
            self.record(stream, "P", pending, now);
            *pending = tail;
        }
    }

    /// The stream ended: a last line without newline is still a full record.
    pub fn finish(&mut self, stream: Stream, now: &str) -> std::io::Result<()> {
        let pending = std::mem::take(&mut self.pending[stream.index()]);
        if !pending.is_empty() {
            self.record(stream, "F", &pending, now);
        }
        self.flush()
    }

    fn record(&mut self, stream: Stream, tag: &str, line: &[u8], now: &str) {
        self.buf.extend_from_slice(now.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(stream.name().as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(tag.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-01-01T00:00:00.000000001Z";

    #[test]
    fn complete_lines_are_full_records_across_chunks() {
        let mut log = CriLog::new(Vec::new());
        log.feed(Stream::Stdout, b"hel", T).unwrap();
        log.feed(Stream::Stderr, b"oops\n", T).unwrap();
        log.feed(Stream::Stdout, b"lo\nworld", T).unwrap();
        log.finish(Stream::Stdout, T).unwrap();
        let text = String::from_utf8(log.into_inner()).unwrap();
        assert_eq!(
            text,
            format!("{T} stderr F oops\n{T} stdout F hello\n{T} stdout F world\n")
        );
    }

    #[test]
    fn reopen_continues_in_a_new_file_with_the_pending_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = CriLog::open(&path).unwrap();
        log.feed(Stream::Stdout, b"one\ntw", T).unwrap();
        std::fs::rename(&path, dir.path().join("c.log.1")).unwrap();
        log.reopen(&path).unwrap();
        log.feed(Stream::Stdout, b"o\n", T).unwrap();
        let old = std::fs::read_to_string(dir.path().join("c.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old, format!("{T} stdout F one\n"));
        assert_eq!(new, format!("{T} stdout F two\n"));
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let mut log = CriLog::new(Vec::new());
        let mut line = vec![b'x'; MAX_LINE + 10];
        line.push(b'\n');
        log.feed(Stream::Stdout, &line, T).unwrap();
        let text = String::from_utf8(log.into_inner()).unwrap();
        let records: Vec<&str> = text.lines().collect();
        assert_eq!(records.len(), 2);
        assert!(records[0].starts_with(&format!("{T} stdout P xxx")));
        assert_eq!(records[0].len(), T.len() + 10 + MAX_LINE);
        assert_eq!(records[1], format!("{T} stdout F {}", "x".repeat(10)));
    }
}
