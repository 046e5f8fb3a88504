//! The farm functions — emitter, worker, collector — as plain Redis clients, and the workload
//! generator they share with the simulator.
//!
//! # Layout
//! - [`workload`]: phase configuration and the pure, seeded iterator of task specs (arrival
//!   offset, processing time, image size, deadline) used by the emitter in real time and by the
//!   simulator in virtual time.
//!
//! The emitter/worker/collector loops and the message types are not built yet (issue 3).
//!
//! # Example
//! ```
//! use functions::workload::{Workload, WorkloadConfig};
//! let tasks: Vec<_> = Workload::new(&WorkloadConfig::default(), 42).collect();
//! assert_eq!(tasks.len(), 1140);
//! ```

pub mod workload;
