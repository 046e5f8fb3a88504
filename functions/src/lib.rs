//! The farm functions — emitter, worker, collector — as plain Redis clients (the `redis`
//! crate over TCP; this crate never links the broker), and the workload generator they share
//! with the simulator.
//!
//! # Layout
//! - [`workload`]: phase configuration and the pure, seeded generator of task specs (arrival
//!   offset, processing time, image size, deadline), used by the emitter in real time and by the
//!   simulator in virtual time.
//! - [`protocol`]: the wire protocol defined once — queue and key names, [`protocol::WorkerId`],
//!   the control messages (SYN/ACK/START) and the farm's clock — shared with the node.
//! - [`messages`]: the data messages (phase config, task, result, output record) with the
//!   original system's field names.
//! - [`runtime`]: the reconnecting broker connection, dead-lettering, control polling and
//!   processing-list recovery.
//! - [`emitter`], [`worker`], [`collector`]: the three loops.
//! - [`http`]: the optional OpenFaaS of-watchdog endpoint (`/_/health`, `POST /`).
//!
//! # Example
//! ```
//! use functions::workload::{Workload, WorkloadConfig};
//! let tasks: Vec<_> = Workload::new(&WorkloadConfig::default(), 42).collect();
//! assert_eq!(tasks.len(), 1140);
//! ```

pub mod collector;
pub mod emitter;
pub mod http;
pub mod messages;
pub mod protocol;
pub mod runtime;
pub mod worker;
pub mod workload;

pub use protocol::{Queues, WorkerId};
pub use runtime::{requeue_processing, FunctionConfig, FunctionError};
