//! `--scaler keda`: the node decides, KEDA applies. The node starts and stops nothing; its
//! target is what KEDA reads through the external scaler (`serve --keda-port`, `crate::keda`),
//! and KEDA's HPA sets the worker Deployment's replicas to it. Kubernetes then picks which pods
//! go (a removed worker hands its unfinished task back within its grace period), so this
//! scaler sends no scale-down requests; the node's orphan rule re-queues what a vanished
//! worker held. It sees its workers as the `worker:*` clients connected to the broker.

use super::{Scaler, ScalerFuture, Vanished, WorkerCounts};
use redis::aio::MultiplexedConnection;

#[derive(Debug, Default)]
pub struct KedaScaler {
    target: u32,
    connected: u32,
}

impl Scaler for KedaScaler {
    fn kind(&self) -> &'static str {
        "keda"
    }

    /// Connected workers up to the target are live; the rest of the target is starting
    /// (KEDA has not applied it yet, or pods are on their way), connected ones beyond it are
    /// leaving (the HPA is removing them).
    fn counts(&self) -> WorkerCounts {
        let live = self.connected.min(self.target);
        WorkerCounts {
            live,
            starting: self.target - live,
            leaving: self.connected.saturating_sub(self.target),
            pending_scale_down: 0,
            capped: None,
        }
    }

    fn reconcile<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn scale_to<'a>(&'a mut self, target: u32, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        self.target = target;
        Box::pin(async { Ok(()) })
    }

    /// KEDA owns the Deployment: nothing of ours to stop.
    fn shutdown<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn observe_connected(&mut self, workers: u32) {
        self.connected = workers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_what_counts_once_asked() {
        let mut s = KedaScaler::default();
        s.observe_connected(3);
        s.target = 5;
        let c = s.counts();
        assert_eq!((c.live, c.starting, c.leaving, c.effective()), (3, 2, 0, 5));
        s.target = 1;
        let c = s.counts();
        assert_eq!((c.live, c.starting, c.leaving, c.effective()), (1, 0, 2, 1));
    }
}
