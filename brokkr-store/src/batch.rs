//! Group commit: writes that wait in a queue and commit together.
//!
//! A transaction per write costs a commit (a WAL flush) and several round trips. The
//! store's frequent writes (new stacks, appends, new placements, agent events, health
//! reports) wait in a queue instead, one queue per kind, and committer tasks each take
//! whatever is waiting, up to a limit, and write it in one transaction with a few
//! statements. An idle store commits a lone write at once; a busy one commits many per
//! flush.
//!
//! Callers are not hostage to one another: a write the batch refuses (a missing row,
//! an invalid report) gets its own error while the rest commit; if a statement of the
//! batch fails, each write is retried alone, so a failure reaches only the write that
//! causes it. A failed commit is not retried, since it may have landed: every write of
//! the batch gets the error, as a lone write would.

use std::future::Future;
use std::sync::Arc;

use brokkr_core::store::{Error, Result};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use crate::Backend;
use crate::write::{Write, Writer};

/// Most writes one transaction takes.
const MAX_BATCH: usize = 128;

/// Most payload bytes one transaction takes (a single larger write still goes alone).
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Writes waiting for a committer; senders wait when it is full.
const QUEUE: usize = 4_096;

/// A write that commits in batches with others of its kind.
pub(crate) trait Batched: Sized + Send + Sync + 'static {
    /// What the caller gets back.
    type Output: Send + 'static;

    /// What the writes are called in logs ("appends").
    const WHAT: &'static str;

    /// The payload bytes this write adds to a batch.
    fn bytes(&self) -> usize;

    /// Writes `batch` in one transaction and commits it; one result per write, in
    /// order. `Err` means the batch failed before its commit, and each write is then
    /// retried alone. A failed commit must come back as `Ok`, with every write's error
    /// ([`commit`] does so).
    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<Self::Output>>>> + Send;
}

/// How many batches of any kind may be committing at once, shared by every committer of
/// a store: each holds a connection while it writes, and the pool must keep room for
/// everything else.
#[derive(Debug, Clone)]
pub(crate) struct CommitSlots(Arc<Semaphore>);

impl CommitSlots {
    pub(crate) fn new(slots: usize) -> Self {
        Self(Arc::new(Semaphore::new(slots.max(1))))
    }
}

/// One write waiting for its batch.
struct Pending<W: Batched> {
    write: W,
    reply: oneshot::Sender<Result<W::Output>>,
}

/// The queue writes of one kind wait in. Dropping it stops its committers once the
/// queue drains.
pub(crate) struct Batcher<W: Batched> {
    queue: mpsc::Sender<Pending<W>>,
}

impl<W: Batched> std::fmt::Debug for Batcher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("what", &W::WHAT).finish()
    }
}

impl<W: Batched> Batcher<W> {
    /// Starts the committers: several on PostgreSQL, where batches commit side by
    /// side (as many as `slots` allows across all kinds), one on SQLite, which has one
    /// writer anyway.
    pub(crate) fn start(writer: &Writer, postgres_committers: usize, slots: &CommitSlots) -> Self {
        let committers = match writer.backend {
            Backend::Postgres => postgres_committers.max(1),
            Backend::Sqlite => 1,
        };
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..committers {
            tokio::spawn(commit_batches(
                writer.clone(),
                receiver.clone(),
                slots.clone(),
            ));
        }
        Self { queue }
    }

    /// Queues `write` and waits until its batch is committed.
    pub(crate) async fn submit(&self, write: W) -> Result<W::Output> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { write, reply };
        self.queue.send(pending).await.map_err(|_| stopped::<W>())?;
        answer.await.map_err(|_| stopped::<W>())?
    }
}

/// One cause answered to every write of a batch.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct SharedCause(Arc<dyn std::error::Error + Send + Sync>);

fn stopped<W: Batched>() -> Error {
    Error::Backend(format!("the store's committers of {} have stopped", W::WHAT).into())
}

/// Commits a batch's transaction. A failure is every write's failure, and is not
/// retried: the commit may have landed.
pub(crate) async fn commit<T>(
    writer: &Writer,
    write: Write,
    what: &str,
    results: Vec<Result<T>>,
) -> Vec<Result<T>> {
    match writer.commit(write).await {
        Ok(()) => results,
        Err(err) => {
            tracing::warn!(error = %err, writes = results.len(), "committing a batch of {what} failed");
            results
                .iter()
                .map(|_| Err(Error::Backend(format!("committing failed: {err}").into())))
                .collect()
        }
    }
}

/// One committer: takes what is waiting (up to the batch limits), commits it, answers.
async fn commit_batches<W: Batched>(
    writer: Writer,
    receiver: Arc<Mutex<mpsc::Receiver<Pending<W>>>>,
    slots: CommitSlots,
) {
    while let Some(batch) = next_batch(&receiver).await {
        // Closed only with the store, and the batch is answered either way.
        let _slot = slots.0.acquire().await.ok();
        let (writes, replies): (Vec<W>, Vec<_>) =
            batch.into_iter().map(|p| (p.write, p.reply)).unzip();
        let mut results = match W::write_batch(&writer, &writes).await {
            Ok(results) => results,
            Err(err) if writes.len() == 1 => vec![Err(err)],
            // Retrying each alone would wait out the acquire timeout once per write.
            Err(Error::Unavailable(cause)) => {
                let cause: Arc<dyn std::error::Error + Send + Sync> = Arc::from(cause);
                writes
                    .iter()
                    .map(|_| {
                        Err(Error::Unavailable(Box::new(SharedCause(Arc::clone(
                            &cause,
                        )))))
                    })
                    .collect()
            }
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    writes = writes.len(),
                    "a batch of {} failed; retrying each alone",
                    W::WHAT
                );
                let mut results = Vec::with_capacity(writes.len());
                for one in writes.chunks(1) {
                    results.push(match W::write_batch(&writer, one).await {
                        Ok(mut result) => result.pop().unwrap_or_else(|| Err(stopped::<W>())),
                        Err(err) => Err(err),
                    });
                }
                results
            }
        };
        for reply in replies.into_iter().rev() {
            let result = results.pop().unwrap_or_else(|| Err(stopped::<W>()));
            // The caller may have gone away; its write is committed all the same.
            let _ = reply.send(result);
        }
    }
}

/// Waits for one write, then takes whatever else is already waiting, within limits.
async fn next_batch<W: Batched>(
    receiver: &Mutex<mpsc::Receiver<Pending<W>>>,
) -> Option<Vec<Pending<W>>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut bytes = first.write.bytes();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        match receiver.try_recv() {
            Ok(pending) => {
                bytes += pending.write.bytes();
                batch.push(pending);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The distinct values, sorted.
pub(crate) fn distinct<T: Ord + Copy>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut values: Vec<T> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}
