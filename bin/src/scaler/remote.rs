//! The `node` scaler: the workers belong to another autoscale-node (`serve --scaler ...`)
//! connected to the same broker. Used by `run --redis URL` when it finds a node there: the
//! node's scaler and policy do the scaling; this side reads the node's published status.

use super::{Scaler, ScalerFuture, Vanished, WorkerCounts};
use crate::requests::{self, NodeStatus, ScaleOp};
use redis::aio::MultiplexedConnection;

#[derive(Debug, Default)]
pub struct RemoteNode {
    pub status: NodeStatus,
}

impl Scaler for RemoteNode {
    fn kind(&self) -> &'static str {
        "node"
    }

    fn counts(&self) -> WorkerCounts {
        self.status.workers.clone()
    }

    fn reconcile<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async move {
            if let Some(s) = requests::node_status(conn).await? {
                self.status = s;
            }
            // The node re-queues its own vanished workers.
            Ok(Vec::new())
        })
    }

    fn scale_to<'a>(&'a mut self, target: u32, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            if target != self.status.target {
                requests::send(conn, ScaleOp::Set, target, 0.0, false).await?;
            }
            Ok(())
        })
    }

    fn shutdown<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        // The workers are the node's; they outlive this run.
        Box::pin(async { Ok(()) })
    }
}
