//! What one connection is doing, as its reads and its requests tell: enough for the
//! loop to close a connection that is idle too long or too slow to send a request
//! head. hyper's own header timeout cannot tell the two apart: it also runs while a
//! keep-alive connection waits for its next request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// "No head is being received", in [`Activity::head_since`].
const NO_HEAD: u64 = u64::MAX;

/// Shared by a connection's socket (reads), its requests and its task (the checks).
#[derive(Debug)]
pub(super) struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last bytes received or the last answer.
    last_ms: AtomicU64,
    /// Milliseconds after `epoch` when the request head being received began.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// Wakes the task when a head begins, so that its deadline starts counting.
    head_began: Notify,
}

/// What the connection's task should do after a check.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Keep the connection; check again at the instant, if any.
    Keep(Option<Instant>),
    /// Nothing in flight and nothing received for the idle timeout: close it.
    Idle,
    /// A request head is taking longer than the header-read timeout: drop it.
    SlowHead,
}

impl Activity {
    /// A connection accepted now; its first head counts from now.
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_began: Notify::new(),
        }
    }

    /// When the connection was accepted.
    pub(super) fn started(&self) -> Instant {
        self.epoch
    }

    fn ms_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Bytes arrived. With no request in flight they start the next head.
    fn received(&self) {
        let now = self.ms_since_epoch(Instant::now());
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(NO_HEAD, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.head_began.notify_one();
        }
    }

    /// A request's head is complete and its answer begins; the guard ends it.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NO_HEAD, Ordering::Release);
        InFlight(self.clone())
    }

    /// Resolves when a request head begins to arrive.
    pub(super) async fn head_began(&self) {
        self.head_began.notified().await;
    }

    /// What to do with the connection at `now`.
    pub(super) fn check(&self, limits: &Limits, now: Instant) -> Check {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Answering: look again later; the answer's end restarts the idle clock.
            return Check::Keep(limits.idle_timeout.map(|idle| now + idle));
        }
        let head_since = self.head_since.load(Ordering::Acquire);
        if head_since != NO_HEAD {
            return match limits.header_read_timeout {
                Some(timeout) if now >= self.at(head_since) + timeout => Check::SlowHead,
                Some(timeout) => Check::Keep(Some(self.at(head_since) + timeout)),
                None => Check::Keep(None),
            };
        }
        match limits.idle_timeout {
            Some(idle) => {
                let deadline = self.at(self.last_ms.load(Ordering::Relaxed)) + idle;
                if now >= deadline {
                    Check::Idle
                } else {
                    Check::Keep(Some(deadline))
                }
            }
            None => Check::Keep(None),
        }
    }
}

/// A request being answered; dropping it (answered, or cancelled when the client left)
/// restarts the idle clock.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.ms_since_epoch(Instant::now());
        activity.last_ms.store(now, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's stream (decrypted, with TLS), telling [`Activity`] when bytes of
/// requests arrive.
pub(super) struct Watched<S> {
    stream: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(super) fn new(stream: S, activity: Arc<Activity>) -> Self {
        Self { stream, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Some(SECOND),
            idle_timeout: Some(10 * SECOND),
            max_connections: None,
        }
    }

    /// A `Keep` whose next check is `expected`, give or take the millisecond the
    /// clocks are kept in.
    fn assert_keep_until(check: Check, expected: Instant) {
        let Check::Keep(Some(at)) = check else {
            panic!("expected Keep until {expected:?}, got {check:?}");
        };
        let gap = if at > expected {
            at - expected
        } else {
            expected - at
        };
        assert!(gap <= Duration::from_millis(2), "{at:?} vs {expected:?}");
    }

    #[test]
    fn a_silent_new_connection_is_a_slow_head() {
        let activity = Activity::new();
        let start = activity.epoch;
        assert_keep_until(activity.check(&limits(), start), start + SECOND);
        assert_eq!(activity.check(&limits(), start + SECOND), Check::SlowHead);
    }

    #[test]
    fn an_answered_request_starts_the_idle_clock_and_bytes_start_a_head() {
        let activity = Arc::new(Activity::new());
        activity.received();
        let answering = activity.request();
        // A long answer is neither idle nor a slow head.
        let much_later = Instant::now() + 30 * SECOND;
        assert_keep_until(
            activity.check(&limits(), much_later),
            much_later + 10 * SECOND,
        );
        drop(answering);
        let answered = Instant::now();
        assert_keep_until(
            activity.check(&limits(), answered + 9 * SECOND),
            answered + 10 * SECOND,
        );
        assert_eq!(
            activity.check(&limits(), answered + 11 * SECOND),
            Check::Idle
        );

        std::thread::sleep(Duration::from_millis(20));
        activity.received();
        let began = Instant::now();
        assert_keep_until(activity.check(&limits(), began), began + SECOND);
        assert_eq!(
            activity.check(&limits(), began + 2 * SECOND),
            Check::SlowHead
        );
    }

    #[test]
    fn without_limits_nothing_is_closed() {
        let activity = Activity::new();
        let none = Limits {
            header_read_timeout: None,
            idle_timeout: None,
            max_connections: None,
        };
        let later = Instant::now() + 3600 * SECOND;
        assert_eq!(activity.check(&none, later), Check::Keep(None));
    }
}
