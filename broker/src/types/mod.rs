//! The value types beyond strings and lists, one module each: their in-memory representation
//! and the operations the commands build on. Like `db`, they know nothing of commands,
//! clients or I/O.
pub mod list;
