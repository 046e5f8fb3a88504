//! The value types beyond strings and lists, one module each: their in-memory representation
//! and the operations the commands build on. Like `db`, they know nothing of commands,
//! clients or I/O.

pub mod hash;
pub mod list;
pub mod pack;
pub mod set;
pub mod stream;
pub mod table;
pub mod zset;
