//! Small typed messages over pipes and socketpairs between the caller, the shim and the
//! container init. A frame is one `write`: tag byte, u32 length (little endian), payload —
//! well under PIPE_BUF, so frames never interleave.

use std::os::fd::{AsRawFd, BorrowedFd};

/// What the three processes tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// init → shim: set up, now blocked on the exec fifo.
    Ready,
    /// shim → caller: the container is created; `pid` is its init, `shim` the shim's pid.
    Created { pid: i32, shim: i32 },
    /// init → shim, or shim → caller: what failed, as a full lowercase message.
    Error(String),
}

const TAG_READY: u8 = 2;
const TAG_CREATED: u8 = 3;
const TAG_ERROR: u8 = 4;
/// Errors are cut to this so a frame stays below PIPE_BUF (4096).
const MAX_PAYLOAD: usize = 3072;

impl Message {
    fn encode(&self) -> Vec<u8> {
        let (tag, payload): (u8, Vec<u8>) = match self {
            Message::Ready => (TAG_READY, vec![]),
            Message::Created { pid, shim } => {
                let mut p = pid.to_le_bytes().to_vec();
                p.extend_from_slice(&shim.to_le_bytes());
                (TAG_CREATED, p)
            }
            Message::Error(msg) => {
                let mut end = msg.len().min(MAX_PAYLOAD);
                while !msg.is_char_boundary(end) {
                    end -= 1;
                }
                (TAG_ERROR, msg.as_bytes()[..end].to_vec())
            }
        };
        let mut frame = Vec::with_capacity(5 + payload.len());
        frame.push(tag);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    fn decode(tag: u8, payload: &[u8]) -> std::io::Result<Message> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad message frame");
        Ok(match tag {
            TAG_READY => Message::Ready,
            TAG_CREATED if payload.len() == 8 => Message::Created {
                pid: i32::from_le_bytes(payload[..4].try_into().map_err(|_| bad())?),
                shim: i32::from_le_bytes(payload[4..].try_into().map_err(|_| bad())?),
            },
            TAG_ERROR => Message::Error(String::from_utf8_lossy(payload).into_owned()),
            _ => return Err(bad()),
        })
    }
}

/// Sends one message (one `write`, retried on EINTR).
pub fn send(fd: BorrowedFd<'_>, msg: &Message) -> std::io::Result<()> {
    let frame = msg.encode();
    let mut off = 0;
    while off < frame.len() {
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                frame[off..].as_ptr().cast(),
                frame.len() - off,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        off += n as usize;
    }
    Ok(())
}

/// Receives one message; `None` when the other end closed (e.g. the init exec'd: its end is
/// close-on-exec).
pub fn recv(fd: BorrowedFd<'_>) -> std::io::Result<Option<Message>> {
    let mut header = [0u8; 5];
    if !read_exact(fd, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header[1..].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    let mut payload = vec![0u8; len];
    if !read_exact(fd, &mut payload)? {
        return Ok(None);
    }
    Message::decode(header[0], &payload).map(Some)
}

/// Fills `buf`; false on EOF before the first byte, error on EOF in the middle.
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut off = 0;
    while off < buf.len() {
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[off..].as_mut_ptr().cast(),
                buf.len() - off,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            if off == 0 {
                return Ok(false);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        off += n as usize;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let msgs = [
            Message::Ready,
            Message::Created { pid: 7, shim: -3 },
            Message::Error("exec: no such file: /bin/nope".into()),
        ];
        for m in &msgs {
            send(w.as_fd(), m).unwrap();
        }
        drop(w);
        for m in &msgs {
            assert_eq!(recv(r.as_fd()).unwrap().as_ref(), Some(m));
        }
        assert_eq!(recv(r.as_fd()).unwrap(), None);
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let (r, w) = nix::unistd::pipe().unwrap();
        send(w.as_fd(), &Message::Error("é".repeat(4000))).unwrap();
        match recv(r.as_fd()).unwrap() {
            Some(Message::Error(s)) => assert!(s.len() <= MAX_PAYLOAD && s.starts_with('é')),
            other => panic!("{other:?}"),
        }
    }
}
