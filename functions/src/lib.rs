//! The farm functions: emitter, worker and collector, as plain Redis clients (to come).
