//! A bounded pool of blocking slots for bcrypt, so password checks never run on an
//! async worker thread and never take more than a fixed number of threads at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// Why a job could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The job panicked or the runtime is shutting down.
    #[error("a password hashing job failed: {0}")]
    JobFailed(String),
}

/// A snapshot of a pool's counters, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Slots in the pool.
    pub slots: usize,
    /// Jobs running now.
    pub in_use: usize,
    /// Callers waiting for a slot now.
    pub waiting: usize,
    /// The most jobs ever seen running at once.
    pub peak_in_use: usize,
    /// Jobs finished (including ones that panicked).
    pub completed: u64,
}

#[derive(Debug)]
struct Inner {
    slots: usize,
    semaphore: Arc<Semaphore>,
    in_use: AtomicUsize,
    waiting: AtomicUsize,
    peak_in_use: AtomicUsize,
    completed: AtomicU64,
}

/// A bounded pool of blocking slots: a [`Semaphore`] of `slots` permits in front of
/// [`tokio::task::spawn_blocking`]. At most `slots` jobs run at once; more callers wait
/// (asynchronously, without holding a thread) for a slot. Cheap to clone: clones share
/// the slots, so one pool can serve several providers.
///
/// A job keeps its slot until it has finished, even if the caller stopped waiting for
/// it (a cancelled login), so the bound holds for the threads actually busy.
///
/// Needs a Tokio runtime (either flavour) when [`HashPool::run`] is awaited.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use latch_provider_homeassistant::HashPool;
///
/// let pool = HashPool::new(2);
/// assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
/// assert_eq!(pool.stats().completed, 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct HashPool {
    inner: Arc<Inner>,
}

impl HashPool {
    /// A pool of `slots` slots (at least 1).
    #[must_use]
    pub fn new(slots: usize) -> Self {
        let slots = slots.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                slots,
                semaphore: Arc::new(Semaphore::new(slots)),
                in_use: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                peak_in_use: AtomicUsize::new(0),
                completed: AtomicU64::new(0),
            }),
        }
    }

    /// A pool with one slot per CPU the process may use.
    #[must_use]
    pub fn with_cpu_count() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    /// The number of slots.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// The current counters.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        let i = &self.inner;
        PoolStats {
            slots: i.slots,
            in_use: i.in_use.load(Ordering::SeqCst),
            waiting: i.waiting.load(Ordering::SeqCst),
            peak_in_use: i.peak_in_use.load(Ordering::SeqCst),
            completed: i.completed.load(Ordering::SeqCst),
        }
    }

    /// Runs `job` on a blocking thread once a slot is free and returns its result.
    ///
    /// # Errors
    /// [`PoolError::JobFailed`] if the job panicked, the runtime is shutting down, or
    /// it is awaited outside a Tokio runtime.
    pub async fn run<F, R>(&self, job: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| PoolError::JobFailed("no tokio runtime to run it on".to_owned()))?;
        let permit = {
            let _waiting = CountGuard::enter(&self.inner.waiting);
            Arc::clone(&self.inner.semaphore)
                .acquire_owned()
                .await
                .map_err(|_| PoolError::JobFailed("the pool is closed".to_owned()))?
        };
        let inner = Arc::clone(&self.inner);
        let handle = runtime.spawn_blocking(move || {
            let _permit = permit;
            let running = inner.in_use.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak_in_use.fetch_max(running, Ordering::SeqCst);
            let _done = Finish(&inner);
            job()
        });
        handle
            .await
            .map_err(|e| PoolError::JobFailed(e.to_string()))
    }
}

impl Default for HashPool {
    /// [`HashPool::with_cpu_count`].
    fn default() -> Self {
        Self::with_cpu_count()
    }
}

/// Increments a counter for as long as it lives (also when the future holding it is
/// dropped while waiting).
struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Leaves the running count and counts the job as finished, even if it panicked.
struct Finish<'a>(&'a Inner);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::SeqCst);
        self.0.completed.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use super::*;

    /// Polls `cond` until it holds or five seconds pass.
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        cond()
    }

    /// Jobs that each hold their slot until a gate opens, with an independent
    /// max-concurrency counter kept by the jobs themselves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_runs_more_jobs_than_slots() {
        let pool = HashPool::new(2);
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let pool = pool.clone();
            let gate = Arc::clone(&gate);
            let running = Arc::clone(&running);
            let max_seen = Arc::clone(&max_seen);
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    let (open, cv) = &*gate;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                    drop(open);
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // While the gate is shut: two jobs run, six callers wait.
        assert!(
            eventually(|| {
                let s = pool.stats();
                s.in_use == 2 && s.waiting == 6
            })
            .await,
            "{:?}",
            pool.stats()
        );
        assert_eq!(running.load(Ordering::SeqCst), 2);
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(max_seen.load(Ordering::SeqCst), 2);
        let stats = pool.stats();
        assert_eq!(stats.peak_in_use, 2);
        assert_eq!(stats.completed, 8);
        assert_eq!((stats.in_use, stats.waiting), (0, 0));
    }

    /// The job blocks until an async timer task on the same single-threaded runtime
    /// has fired. Were the job run on the runtime's only thread, the timer could never
    /// fire and the job would give up after its timeout.
    #[tokio::test(flavor = "current_thread")]
    async fn jobs_run_off_the_runtime_thread() {
        let pool = HashPool::new(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let ping = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.send(()).unwrap();
        });
        let heard = pool
            .run(move || rx.recv_timeout(Duration::from_secs(10)).is_ok())
            .await
            .unwrap();
        assert!(
            heard,
            "the async timer task could not run while the job ran"
        );
        ping.await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_frees_its_slot() {
        let pool = HashPool::new(1);
        let r: Result<(), PoolError> = pool.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(PoolError::JobFailed(_))));
        assert_eq!(pool.run(|| 1).await, Ok(1));
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(pool.stats().completed, 2);
    }

    #[test]
    fn outside_a_tokio_runtime_it_is_an_error_not_a_panic() {
        let pool = HashPool::new(1);
        let r = futures::executor::block_on(pool.run(|| 1));
        assert!(matches!(r, Err(PoolError::JobFailed(_))), "{r:?}");
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn zero_slots_means_one() {
        assert_eq!(HashPool::new(0).slots(), 1);
        assert!(HashPool::default().slots() >= 1);
    }
}
