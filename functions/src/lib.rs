//! The farm functions — emitter, worker, collector — as plain Redis clients (the `redis`
//! crate over TCP; this crate never links the broker). The tasks they carry come from the
//! `workload` crate's generator, which the simulator shares.
//!
//! # Layout
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
//! // The phase-config messages the emitter is given for a seeded run of the default workload.
//! let phases = functions::emitter::phase_messages(&workload::WorkloadConfig::default(), 42);
//! assert_eq!(phases.len(), 4);
//! ```

pub mod collector;
pub mod emitter;
pub mod http;
pub mod messages;
pub mod protocol;
pub mod runtime;
pub mod worker;

pub use protocol::{Queues, WorkerId};
pub use runtime::{requeue_processing, requeue_tasks, FunctionConfig, FunctionError};
