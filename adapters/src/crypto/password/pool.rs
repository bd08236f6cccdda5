//! The hashing threads and their bounded queue.
//!
//! A request that hashes first takes a place in the queue
//! ([`Pool::reserve`]); when every place is taken it is refused at once
//! (`503 overloaded`) instead of waiting behind work it cannot outrun. A job
//! gives its place back when a thread starts it, and a job whose caller has
//! gone (the request future was dropped, or its client closed the connection:
//! see [`crate::client_presence`]) is dropped there without hashing anything.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use application::ports::{HashTicket, Overloaded};

use crate::client_presence::Presence;

/// What a refused request is told to wait: a place frees every few tens of
/// milliseconds under load, so a second is plenty and keeps clients from
/// hammering.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A unit of work for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and the count of places taken in their queue.
#[derive(Clone)]
pub(super) struct Pool {
    jobs: mpsc::Sender<Job>,
    concurrency: usize,
    queue: Arc<Queue>,
}

/// The queue's counters.
#[derive(Debug)]
struct Queue {
    /// Places taken: reserved and not yet started.
    waiting: AtomicUsize,
    limit: usize,
    /// Requests refused because every place was taken.
    shed: AtomicU64,
    /// Jobs dropped unrun because their caller had gone.
    skipped: AtomicU64,
}

/// What the queue has done so far (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Places taken now.
    pub waiting: usize,
    /// Requests refused with `503 overloaded` so far.
    pub shed: u64,
    /// Jobs dropped unrun because the client had gone.
    pub skipped: u64,
}

/// A taken place; dropping it gives the place back.
struct Place(Arc<Queue>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// Starts `concurrency` threads behind a queue of `limit` places.
    pub(super) fn start(concurrency: usize, limit: usize) -> anyhow::Result<Self> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..concurrency {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        let Ok(job) = job else { break };
                        // A panicking job drops its reply channel (the caller
                        // gets an error); the thread lives on.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .context("starting a password hashing thread")?;
        }
        Ok(Self {
            jobs,
            concurrency,
            queue: Arc::new(Queue {
                waiting: AtomicUsize::new(0),
                limit,
                shed: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            }),
        })
    }

    /// How many jobs run at the same time.
    pub(super) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The counters.
    pub(super) fn stats(&self) -> QueueStats {
        QueueStats {
            waiting: self.queue.waiting.load(Ordering::SeqCst),
            shed: self.queue.shed.load(Ordering::SeqCst),
            skipped: self.queue.skipped.load(Ordering::SeqCst),
        }
    }

    /// Takes a place, or refuses when all are taken.
    pub(super) fn reserve(&self) -> Result<HashTicket, Overloaded> {
        let queue = &self.queue;
        let taken = queue
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < queue.limit).then_some(n + 1)
            });
        if taken.is_err() {
            queue.shed.fetch_add(1, Ordering::SeqCst);
            return Err(Overloaded {
                retry_after: RETRY_AFTER,
            });
        }
        Ok(HashTicket::new(Place(Arc::clone(queue))))
    }

    /// Runs `work` on a hashing thread after what is queued, outside the
    /// queue's places (the hasher's own start-up work).
    pub(super) fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.send(Box::new(work));
    }

    /// Runs `work` on a hashing thread in `ticket`'s place; answers with its
    /// result and the moment it started (after the queue). Work whose caller
    /// stopped waiting before a thread was free is not run.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        ticket: HashTicket,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<(T, Instant)> {
        let (done, result) = tokio::sync::oneshot::channel();
        // What the job logs belongs to the caller's span (request, use case).
        let span = tracing::Span::current();
        let queue = Arc::clone(&self.queue);
        let client = crate::client_presence::current();
        self.jobs
            .send(Box::new(move || {
                drop(ticket);
                if done.is_closed() || client.as_ref().is_some_and(Presence::is_gone) {
                    queue.skipped.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let started = Instant::now();
                let _ = done.send((span.in_scope(work), started));
            }))
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        result.await.context("password hashing failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_n_run_at_once() {
        let pool = Pool::start(2, 100).unwrap();
        let n = pool.concurrency();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..n * 3)
            .map(|_| {
                let (pool, running, peak) = (pool.clone(), Arc::clone(&running), Arc::clone(&peak));
                tokio::spawn(async move {
                    let ticket = pool.reserve().unwrap();
                    pool.run(ticket, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            n,
            "the limit is reached but never passed"
        );
    }

    /// Holds both threads until `release` is set.
    fn occupy(pool: &Pool, release: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..pool.concurrency())
            .map(|_| {
                let (pool, release) = (pool.clone(), Arc::clone(release));
                let ticket = pool.reserve().unwrap();
                tokio::spawn(async move {
                    pool.run(ticket, move || {
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    })
                    .await
                    .unwrap();
                })
            })
            .collect()
    }

    async fn until(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_gives_places_back() {
        let pool = Pool::start(2, 3).unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let busy = occupy(&pool, &release);
        // The two running jobs gave their places back when they started.
        until(|| pool.stats().waiting == 0).await;
        let tickets: Vec<_> = (0..3).map(|_| pool.reserve().unwrap()).collect();
        let refused = pool.reserve().unwrap_err();
        assert_eq!(refused.retry_after, RETRY_AFTER);
        assert_eq!(
            pool.stats(),
            QueueStats {
                waiting: 3,
                shed: 1,
                skipped: 0
            }
        );
        // A ticket dropped unused (a throttled login) frees its place.
        drop(tickets);
        assert_eq!(pool.stats().waiting, 0);
        let _again = pool.reserve().unwrap();
        release.store(true, Ordering::SeqCst);
        for t in busy {
            t.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_whose_caller_has_gone_is_not_run() {
        let pool = Pool::start(2, 100).unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let busy = occupy(&pool, &release);
        until(|| pool.stats().waiting == 0).await;
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..20 {
            let ran = Arc::clone(&ran);
            let ticket = pool.reserve().unwrap();
            // The caller stops waiting (as a request future is dropped when
            // its client closes the connection) while the threads are busy.
            let waited = tokio::time::timeout(
                Duration::from_millis(1),
                pool.run(ticket, move || ran.fetch_add(1, Ordering::SeqCst)),
            )
            .await;
            assert!(waited.is_err());
        }
        assert_eq!(pool.stats().waiting, 20, "queued jobs keep their places");
        release.store(true, Ordering::SeqCst);
        for t in busy {
            t.await.unwrap();
        }
        let ticket = pool.reserve().unwrap();
        let (value, _) = pool.run(ticket, || 7).await.unwrap();
        assert_eq!(value, 7);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "abandoned work ran");
        assert_eq!(
            pool.stats(),
            QueueStats {
                waiting: 0,
                shed: 0,
                skipped: 20
            }
        );
    }
}
