//! Streams one container's log file into a response body: the existing lines (after the
//! `since` and `tailLines` filters), then, when following, new lines as the runtime appends
//! them until the container has exited and its log is drained (kubelet's `ReadLogs`).

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

use super::crilog::{after, Assembler, Line, LogOptions};

/// How often a follower looks for new data at the end of the file.
const POLL: Duration = Duration::from_millis(100);
/// How many empty polls pass between two checks of the container's state.
const POLLS_PER_STATE_CHECK: u32 = 5;
/// Bytes gathered before a chunk is sent while reading what is already written.
const CHUNK: usize = 32 * 1024;

/// Where the log is, and how to learn whether its container still runs.
pub struct Source<F> {
    pub path: PathBuf,
    pub running: F,
}

/// Sends the log to `tx` until done, the limit is reached or the receiver is gone.
pub async fn stream<F, Fut>(src: Source<F>, opts: LogOptions, tx: mpsc::Sender<Bytes>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let Source { path, mut running } = src;
    let file = match open_at_tail(&path, opts.tail_lines).await {
        Ok(f) => f,
        Err(e) => {
            // A container that never wrote has no file yet: an empty log.
            tracing::debug!(path = %path.display(), error = %e, "open container log");
            return;
        }
    };
    let mut reader = BufReader::new(file);
    let mut sink = Sink {
        tx,
        left: opts.limit_bytes,
        buf: Vec::new(),
    };
    let mut asm = Assembler::default();
    let mut raw = Vec::new();
    let mut tail: VecDeque<Line> = VecDeque::new();
    // What is already written: every whole record up to the end of the file.
    while let Some(line) = next_line(&mut reader, &mut raw, &mut asm, opts.timestamps).await {
        let Some(line) = line.filter(|l| after(l, opts.since)) else {
            continue;
        };
        match opts.tail_lines {
            Some(0) => {}
            Some(n) => {
                if tail.len() == n {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            None => {
                if !sink.add(&line.bytes, false).await {
                    return;
                }
            }
        }
    }
    for line in tail {
        if !sink.add(&line.bytes, false).await {
            return;
        }
    }
    if !sink.flush().await || !opts.follow {
        return;
    }
    follow(
        &mut reader,
        &mut raw,
        &mut asm,
        &opts,
        &mut sink,
        &mut running,
    )
    .await;
}

/// Opens the log, positioned where the last `tail` lines begin (the start without a tail).
async fn open_at_tail(path: &Path, tail: Option<usize>) -> std::io::Result<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await?;
    if let Some(n) = tail {
        let p = path.to_path_buf();
        let off = tokio::task::spawn_blocking(move || super::tail::offset(&p, n))
            .await
            .map_err(std::io::Error::other)??;
        file.seek(std::io::SeekFrom::Start(off)).await?;
    }
    Ok(file)
}

/// Sends lines appended after the first read, until the container stops and the file ends.
async fn follow<F, Fut>(
    reader: &mut BufReader<tokio::fs::File>,
    raw: &mut Vec<u8>,
    asm: &mut Assembler,
    opts: &LogOptions,
    sink: &mut Sink,
    running: &mut F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut idle = 0u32;
    let mut stopped = false;
    loop {
        let mut any = false;
        while let Some(line) = next_line(reader, raw, asm, opts.timestamps).await {
            any = true;
            if let Some(line) = line.filter(|l| after(l, opts.since)) {
                if !sink.add(&line.bytes, true).await {
                    return;
                }
            }
        }
        if any {
            idle = 0;
            continue;
        }
        // The runtime writes the last records before it reports the exit, so once the
        // container is seen stopped, one more read drains the file.
        if stopped {
            return;
        }
        if sink.tx.is_closed() {
            return;
        }
        idle += 1;
        if idle == POLLS_PER_STATE_CHECK {
            idle = 0;
            if !running().await {
                stopped = true;
                continue;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads the next whole record: `Some(Some(line))` when it finishes a line, `Some(None)`
/// for a partial or malformed record, `None` at the end of the written data. An unfinished
/// record (no newline yet) stays in `raw` until the rest arrives.
async fn next_line(
    reader: &mut BufReader<tokio::fs::File>,
    raw: &mut Vec<u8>,
    asm: &mut Assembler,
    timestamps: bool,
) -> Option<Option<Line>> {
    match reader.read_until(b'\n', raw).await {
        Ok(0) | Err(_) => None,
        Ok(_) if raw.last() != Some(&b'\n') => None,
        Ok(_) => {
            raw.pop();
            let line = asm.push(raw, timestamps);
            raw.clear();
            Some(line)
        }
    }
}

/// The response body: batches writes and enforces `limitBytes`.
struct Sink {
    tx: mpsc::Sender<Bytes>,
    left: Option<usize>,
    buf: Vec<u8>,
}

impl Sink {
    /// Adds bytes (sent at once when `now`); false when the stream must end.
    async fn add(&mut self, bytes: &[u8], now: bool) -> bool {
        let take = self.left.map_or(bytes.len(), |l| l.min(bytes.len()));
        self.buf.extend_from_slice(&bytes[..take]);
        if let Some(l) = self.left.as_mut() {
            *l -= take;
            if *l == 0 {
                self.flush().await;
                return false;
            }
        }
        if now || self.buf.len() >= CHUNK {
            return self.flush().await;
        }
        true
    }

    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(chunk).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    async fn collect(path: PathBuf, opts: LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel(4);
        let src = Source {
            path,
            running: || async { false },
        };
        tokio::spawn(stream(src, opts, tx));
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        String::from_utf8(out).unwrap()
    }

    fn write_log(lines: &[&str]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        f
    }

    #[tokio::test]
    async fn tail_since_limit_and_partials() {
        let f = write_log(&[
            "2024-01-01T00:00:01Z stdout F one",
            "2024-01-01T00:00:02Z stdout P tw",
            "2024-01-01T00:00:03Z stderr F err",
            "2024-01-01T00:00:04Z stdout F o",
            "2024-01-01T00:00:05Z stdout F three",
        ]);
        let p = f.path().to_path_buf();
        let all = collect(p.clone(), LogOptions::default()).await;
        assert_eq!(all, "one\nerr\ntwo\nthree\n");
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(collect(p.clone(), tail).await, "two\nthree\n");
        let since = LogOptions {
            since: Some("2024-01-01T00:00:03Z".parse().unwrap()),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            collect(p.clone(), since).await,
            "2024-01-01T00:00:03Z err\n2024-01-01T00:00:05Z three\n"
        );
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(collect(p, limit).await, "one\ner");
    }

    #[tokio::test]
    async fn follow_sends_appended_lines_and_ends_when_stopped() {
        let mut f = write_log(&["2024-01-01T00:00:01Z stdout F first"]);
        let path = f.path().to_path_buf();
        let (tx, mut rx) = mpsc::channel(4);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let src = Source {
            path,
            running: move || {
                let s = s.clone();
                async move { !s.load(std::sync::atomic::Ordering::SeqCst) }
            },
        };
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let task = tokio::spawn(stream(src, opts, tx));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(&first.unwrap().unwrap()[..], b"first\n");
        // A record written in two pieces is sent once whole.
        write!(f, "2024-01-01T00:00:02Z stdout F sec").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        writeln!(f, "ond").unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(&second.unwrap().unwrap()[..], b"second\n");
        writeln!(f, "2024-01-01T00:00:03Z stdout F last").unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let third = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(&third.unwrap().unwrap()[..], b"last\n");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("follow ends once the container stopped and the file is drained")
            .unwrap();
    }
}
