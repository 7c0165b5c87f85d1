//! How an idle worker asks for jobs: every tick, without ever losing one.
//!
//! apalis's `IntervalStrategy` replaces a timer that fired with a new one
//! without polling it. When the tick and an empty fetch land in the same
//! poll, no waker is left behind and an idle worker sleeps until its next
//! heartbeat: jobs waited 20-30 s in the queue while the worker was "up".
//! [`Ticker`] polls its interval until it is pending again, so the next tick
//! is always registered before it answers.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use tokio::time::{Interval, MissedTickBehavior};

pub struct Ticker {
    interval: Interval,
}

impl Ticker {
    /// Ticks every `every`; must be made inside the worker's runtime.
    pub fn new(every: Duration) -> Self {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { interval }
    }
}

impl PollStrategy for Ticker {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut ticked = false;
        // Pending registers the waker of the next tick: keep polling until then.
        while self.interval.poll_tick(cx).is_ready() {
            ticked = true;
        }
        if ticked {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use apalis_core::backend::ext::poll_strategy::IntervalStrategy;
    use futures::task::{waker, ArcWake};

    use super::*;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `strategy` until a tick, then waits three intervals without
    /// polling: the wake-ups the strategy arranged in that time.
    async fn wakes_after_a_tick(mut strategy: impl PollStrategy) -> usize {
        let wakes = Arc::new(Wakes::default());
        let waker = waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let snapshot = PollSnapshot::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while strategy.poll_drive(&mut cx, &snapshot).is_pending() {
            assert!(tokio::time::Instant::now() < deadline, "no first tick");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = wakes.0.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        wakes.0.load(Ordering::SeqCst) - before
    }

    #[tokio::test]
    async fn after_a_tick_the_next_one_wakes_the_worker_without_another_poll() {
        assert!(wakes_after_a_tick(Ticker::new(Duration::from_millis(20))).await >= 1);
    }

    /// Pins the upstream behaviour `Ticker` exists for: should apalis fix
    /// it, this fails and `Ticker` can go.
    #[tokio::test]
    async fn apalis_interval_strategy_leaves_no_wake_up_after_a_tick() {
        let apalis = IntervalStrategy::new(Duration::from_millis(20));
        assert_eq!(wakes_after_a_tick(apalis).await, 0);
    }
}
