//! Session tasks counted rather than joined.
//!
//! A `JoinSet` keeps an allocation per task for its whole life, which an
//! idle session would pay for nothing: shutdown only needs to know when
//! the last session has ended. [`TaskCount`] keeps one counter for all.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The number of live tasks started through it, and a wake-up when it
/// drops to zero.
#[derive(Default)]
pub struct TaskCount {
    live: AtomicUsize,
    all_ended: Notify,
}

/// Decrements the count when its task ends, however it ends.
struct Counted(Arc<TaskCount>);

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_ended.notify_waiters();
        }
    }
}

/// A future counted until it is dropped. A struct rather than an async
/// block, which would keep the wrapped future twice: once as its captured
/// value and once as the future it awaits.
struct CountedFuture<F> {
    future: F,
    _counted: Counted,
}

impl<F: Future> Future for CountedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is pinned with the struct: nothing moves it out,
        // and the struct has no Drop impl of its own that could.
        unsafe { self.map_unchecked_mut(|counted| &mut counted.future) }.poll(cx)
    }
}

impl TaskCount {
    pub fn new() -> Arc<TaskCount> {
        Arc::new(TaskCount::default())
    }

    /// Spawns `future` on the current runtime and counts it until it ends.
    pub fn spawn(self: &Arc<Self>, future: impl Future<Output = ()> + Send + 'static) {
        self.live.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(CountedFuture { future, _counted: Counted(Arc::clone(self)) });
    }

    /// Returns the number of tasks still running.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until every counted task has ended.
    pub async fn all_ended(&self) {
        loop {
            let ended = self.all_ended.notified();
            tokio::pin!(ended);
            // Registered before the check, so a last task ending between the
            // check and the await still wakes this waiter.
            ended.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            ended.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn all_ended_waits_for_the_last_task() {
        let count = TaskCount::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        count.spawn(async move {
            let _ = released.await;
        });
        count.spawn(async {});
        assert!(tokio::time::timeout(Duration::from_millis(50), count.all_ended()).await.is_err());
        assert_eq!(count.live(), 1);

        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), count.all_ended()).await.unwrap();
        assert_eq!(count.live(), 0);
    }

    #[tokio::test]
    async fn all_ended_returns_at_once_without_tasks() {
        let count = TaskCount::new();
        tokio::time::timeout(Duration::from_secs(1), count.all_ended()).await.unwrap();
    }
}
