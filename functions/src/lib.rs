//! The farm functions — emitter, worker, collector — as plain Redis clients (the `redis`
//! crate over TCP; this crate never links the broker), and the workload generator they share
//! with the simulator.
//!
//! # Layout
//! - [`workload`]: phase configuration and the pure, seeded generator of task specs (arrival
//!   offset, processing time, image size, deadline), used by the emitter in real time and by the
//!   simulator in virtual time.
//! - [`messages`]: the JSON messages with the original system's field names.
//! - [`runtime`]: queue names, the reconnecting broker connection, the run clock,
//!   dead-lettering, control messages and processing-list recovery.
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
pub mod runtime;
pub mod worker;
pub mod workload;

pub use runtime::{requeue_processing, FunctionConfig, FunctionError, Queues};
