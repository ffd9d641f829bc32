//! Where `tailLines` starts reading: scanning back from the end of a log file, as the
//! kubelet's tail does, so a short tail of a long log reads only its end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::crilog::parse;

/// Bytes read per step backwards.
const BLOCK: u64 = 64 * 1024;

/// Counts whole lines backwards. A line is its stream's final (`F`) record with the partial
/// (`P`) records of the same stream before it, which other streams' records may interleave,
/// so the cut must also keep every counted line's beginning.
struct Counter {
    want: usize,
    lines: usize,
    /// Whether a counted line of stdout / stderr may still have parts further back.
    open: [bool; 2],
}

impl Counter {
    /// Takes the next record going backwards; true when everything after it is enough.
    fn done_after(&mut self, record: &[u8]) -> bool {
        let Some(rec) = parse(record) else {
            return false;
        };
        if rec.partial {
            return false;
        }
        let s = usize::from(rec.stream == "stderr");
        // This record ends an earlier line of its stream: the open line begins after it.
        self.open[s] = false;
        if self.lines < self.want {
            self.lines += 1;
            self.open[s] = true;
            return false;
        }
        !self.open.iter().any(|o| *o)
    }
}

/// The file offset from which the last `n` whole lines (and any unfinished one after them)
/// can be read; the caller still keeps only the last `n` (a cut may leave a few more).
pub fn offset(path: &Path, n: usize) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut counter = Counter {
        want: n,
        lines: 0,
        open: [false; 2],
    };
    // `buf` holds file[start..start + buf.len()): the block being scanned plus the start of
    // the record whose newline was found but whose beginning lies further back.
    let mut buf: Vec<u8> = Vec::new();
    let mut start = len;
    let mut record_end: Option<u64> = None;
    while start > 0 {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut block)?;
        let scanned = start;
        block.extend_from_slice(&buf);
        buf = block;
        start = from;
        for off in (start..scanned).rev() {
            if buf[(off - start) as usize] != b'\n' {
                continue;
            }
            if let Some(end) = record_end {
                let rec = &buf[(off + 1 - start) as usize..(end - start) as usize];
                if counter.done_after(rec) {
                    return Ok(end + 1);
                }
            }
            record_end = Some(off);
        }
        // Keep only the pending record's bytes (everything after it is counted).
        if let Some(end) = record_end {
            buf.truncate((end - start) as usize);
        }
    }
    if let Some(end) = record_end {
        if counter.done_after(&buf[..end as usize]) {
            return Ok(end + 1);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(lines: &[&str]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        f
    }

    fn rest(f: &tempfile::NamedTempFile, n: usize) -> String {
        let off = offset(f.path(), n).unwrap() as usize;
        std::fs::read_to_string(f.path()).unwrap()[off..].to_string()
    }

    #[test]
    fn cuts_before_the_last_lines_keeping_their_parts() {
        let f = file(&[
            "t1 stdout F one",
            "t2 stdout P tw",
            "t3 stderr F err",
            "t4 stdout F o",
            "t5 stdout F three",
        ]);
        assert_eq!(rest(&f, 1), "t5 stdout F three\n");
        // "two" began before "err": the cut keeps its first part.
        assert_eq!(
            rest(&f, 2),
            "t2 stdout P tw\nt3 stderr F err\nt4 stdout F o\nt5 stdout F three\n"
        );
        assert_eq!(rest(&f, 0), "");
        assert_eq!(rest(&f, 10).lines().count(), 5);
    }

    #[test]
    fn scans_across_blocks() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let long = "y".repeat(BLOCK as usize + 10);
        writeln!(f, "t0 stdout F first").unwrap();
        writeln!(f, "t1 stdout P {long}").unwrap();
        writeln!(f, "t2 stdout F end").unwrap();
        for i in 0..5000 {
            writeln!(f, "t3 stdout F line-{i}").unwrap();
        }
        write!(f, "t4 stdout F unfinished").unwrap();
        f.flush().unwrap();
        assert!(rest(&f, 2).starts_with("t3 stdout F line-4998\n"));
        assert!(rest(&f, 5001).starts_with("t1 stdout P yyy"));
        assert!(rest(&f, 6000).starts_with("t0 stdout F first"));
        assert_eq!(rest(&f, 0), "t4 stdout F unfinished");
    }
}
