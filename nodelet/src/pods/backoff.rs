//! CrashLoopBackOff: when an exited container may restart, as the kubelet's container
//! back-off (flowcontrol.Backoff keyed by container) decides it: the first restart is
//! immediate, the next waits 10 s after the exit, each further one twice as long up to 5 min,
//! and a container that ran for 10 min starts over.

use std::time::Duration;

/// The wait before the second restart.
pub const START: Duration = Duration::from_secs(10);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(300);
/// A run longer than this forgets the back-off (the kubelet's "stable for twice the max").
pub const RESET: Duration = Duration::from_secs(600);

/// What to do with an exited container that its restartPolicy restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// In back-off: no restart until `delay` after it finished (reason CrashLoopBackOff).
    Wait { delay: Duration },
    /// Restart now; the wait before the restart after this one is `next`.
    Restart { next: Duration },
}

/// `current`: the wait set at this container's last restart, None before its first one;
/// `ran`: how long the exited instance ran; `since_exit`: how long ago it finished.
pub fn decide(current: Option<Duration>, ran: Duration, since_exit: Duration) -> Decision {
    match current.filter(|_| ran <= RESET) {
        Some(delay) if since_exit < delay => Decision::Wait { delay },
        Some(delay) => Decision::Restart {
            next: (delay * 2).min(MAX),
        },
        None => Decision::Restart { next: START },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn crash_loop_back_off_table() {
        use Decision::{Restart, Wait};
        let cases = [
            // (current wait, ran, since exit) → decision
            (
                "first exit restarts at once",
                None,
                s(1),
                s(0),
                Restart { next: s(10) },
            ),
            (
                "second exit waits 10 s",
                Some(s(10)),
                s(1),
                s(3),
                Wait { delay: s(10) },
            ),
            (
                "after 10 s it restarts",
                Some(s(10)),
                s(1),
                s(10),
                Restart { next: s(20) },
            ),
            (
                "the wait doubles",
                Some(s(20)),
                s(1),
                s(5),
                Wait { delay: s(20) },
            ),
            (
                "then 40 s",
                Some(s(20)),
                s(1),
                s(21),
                Restart { next: s(40) },
            ),
            (
                "160 s doubles to the cap",
                Some(s(160)),
                s(1),
                s(160),
                Restart { next: s(300) },
            ),
            (
                "the cap holds",
                Some(s(300)),
                s(1),
                s(299),
                Wait { delay: s(300) },
            ),
            (
                "and stays the cap",
                Some(s(300)),
                s(1),
                s(300),
                Restart { next: s(300) },
            ),
            (
                "ran 10 min: still counts",
                Some(s(300)),
                s(600),
                s(1),
                Wait { delay: s(300) },
            ),
            (
                "ran over 10 min: starts over",
                Some(s(300)),
                s(601),
                s(0),
                Restart { next: s(10) },
            ),
        ];
        for (what, current, ran, since, want) in cases {
            assert_eq!(decide(current, ran, since), want, "{what}");
        }
    }

    #[test]
    fn the_waits_of_a_steady_crash_loop() {
        let mut current = None;
        let mut waits = Vec::new();
        for _ in 0..8 {
            // Each exit comes right after a start; the restart happens once the wait is over.
            if let Decision::Wait { delay } = decide(current, s(1), s(0)) {
                waits.push(delay.as_secs());
                assert_eq!(
                    decide(current, s(1), delay - s(1)),
                    Decision::Wait { delay }
                );
            }
            let Decision::Restart { next } = decide(current, s(1), s(300)) else {
                panic!("no restart after the longest wait")
            };
            current = Some(next);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
    }
}
