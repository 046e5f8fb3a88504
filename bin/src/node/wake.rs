//! Decisions at the broker's speed: a queue hook that wakes the control loop when the work
//! queue grows beyond what the farm absorbed at the last decision, so that a burst is answered
//! within a tick instead of at the next period.
//!
//! The hook runs on the broker's command path under the keyspace lock, so it does two atomic
//! operations and, at most once per decision, a `Notify` — nothing that blocks or allocates.

use broker::{QueueEvent, QueueHook};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;

/// Wakes the loop when `worker_queue` (database 0) reaches the threshold armed at the last
/// decision; fires once, then waits to be armed again. Over several lists (`serve --queue
/// list:A,list:B`) it compares their summed lengths, each list's as its last push or pop
/// left it (a list not touched since the node started counts 0 until it is).
pub struct QueueWake {
    queues: Vec<Vec<u8>>,
    lengths: Vec<AtomicU64>,
    threshold: AtomicU64,
    notify: Notify,
}

impl QueueWake {
    /// Growth beyond the idle workers that counts as a burst even when the queue does not
    /// double: a few tasks, not one (a farm near saturation often holds one or two).
    pub const JUMP: u64 = 4;

    /// A hook on `queue`, disarmed until the first decision arms it.
    pub fn new(queue: &str) -> QueueWake {
        QueueWake::on(&[queue])
    }

    /// A hook on each of `queues`, disarmed until the first decision arms it.
    pub fn on(queues: &[&str]) -> QueueWake {
        QueueWake {
            queues: queues.iter().map(|q| q.as_bytes().to_vec()).collect(),
            lengths: queues.iter().map(|_| AtomicU64::new(0)).collect(),
            threshold: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
        }
    }

    /// The queue length that wakes the loop after a decision that saw `queue_length` waiting
    /// tasks and `idle_workers` free: the queue doubled, or grew by more than the idle workers
    /// absorb plus [`Self::JUMP`].
    pub fn threshold(queue_length: u64, idle_workers: u32) -> u64 {
        (2 * queue_length)
            .max(queue_length + u64::from(idle_workers) + Self::JUMP)
            .max(1)
    }

    /// Arms the hook after a decision (see [`Self::threshold`]).
    pub fn arm(&self, queue_length: u64, idle_workers: u32) {
        self.threshold
            .store(Self::threshold(queue_length, idle_workers), Relaxed);
    }

    /// Completes when the hook fires (or has fired since the last wait).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl QueueHook for QueueWake {
    fn on_event(&self, event: &QueueEvent) {
        let (queue, length, pushed) = match event {
            QueueEvent::Pushed {
                db: 0, queue, length, ..
            } => (queue, length, true),
            QueueEvent::Popped {
                db: 0, queue, length, ..
            } => (queue, length, false),
            _ => return,
        };
        let Some(i) = self.queues.iter().position(|q| q.as_slice() == queue.as_ref()) else {
            return;
        };
        self.lengths[i].store(*length as u64, Relaxed);
        if pushed {
            let total: u64 = self.lengths.iter().map(|l| l.load(Relaxed)).sum();
            let armed = self.threshold.load(Relaxed);
            // Once per arming: the decision re-arms it. Disarmed only if still armed at the
            // value that fired, so a re-arming in between is not lost.
            if total >= armed
                && self
                    .threshold
                    .compare_exchange(armed, u64::MAX, Relaxed, Relaxed)
                    .is_ok()
            {
                self.notify.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn push(queue: &'static str, length: usize) -> QueueEvent {
        QueueEvent::Pushed {
            db: 0,
            queue: Bytes::from_static(queue.as_bytes()),
            count: 1,
            length,
        }
    }

    #[tokio::test]
    async fn fires_once_when_the_queue_outgrows_the_farm() {
        let wake = QueueWake::new("worker_queue");
        // Not armed: nothing fires.
        wake.on_event(&push("worker_queue", 1000));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), wake.woken())
                .await
                .is_err()
        );
        // 2 idle workers, empty queue: the 6th waiting task is a burst.
        wake.arm(0, 2);
        assert_eq!(QueueWake::threshold(0, 2), 6);
        for len in 1..6 {
            wake.on_event(&push("worker_queue", len));
        }
        wake.on_event(&push("other_queue", 50));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), wake.woken())
                .await
                .is_err()
        );
        wake.on_event(&push("worker_queue", 6));
        wake.on_event(&push("worker_queue", 7));
        tokio::time::timeout(std::time::Duration::from_secs(5), wake.woken())
            .await
            .expect("woken");
        // Fired once: the second push found it disarmed.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), wake.woken())
                .await
                .is_err()
        );
        // A long queue must double.
        assert_eq!(QueueWake::threshold(40, 0), 80);
    }

    #[tokio::test]
    async fn over_several_lists_their_sum_fires_it() {
        async fn silent(wake: &QueueWake) -> bool {
            tokio::time::timeout(std::time::Duration::from_millis(20), wake.woken())
                .await
                .is_err()
        }
        let wake = QueueWake::on(&["rq:queue:high", "rq:queue:default"]);
        // Empty and nothing idle: 4 waiting in all is a burst.
        wake.arm(0, 0);
        wake.on_event(&push("rq:queue:other", 100));
        wake.on_event(&push("rq:queue:default", 3));
        assert!(silent(&wake).await);
        wake.on_event(&push("rq:queue:high", 1));
        tokio::time::timeout(std::time::Duration::from_secs(5), wake.woken())
            .await
            .expect("woken by the sum of both lists");
        // Pops count too: `default` drained, so 2 on `high` is no burst.
        wake.arm(0, 0);
        wake.on_event(&QueueEvent::Popped {
            db: 0,
            queue: Bytes::from_static(b"rq:queue:default"),
            count: 3,
            length: 0,
            client: 1,
        });
        wake.on_event(&push("rq:queue:high", 2));
        assert!(silent(&wake).await);
    }
}
