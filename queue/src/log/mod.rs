//! Append-only partition logs: raw v2 batches in segment files (see
//! `partition.rs` for the write path and `segment.rs` for the file layout).

pub mod batch;
pub mod encode;
pub mod encoded;
pub mod partition;
pub mod producer;
pub mod segment;
#[cfg(test)]
mod tests;

pub use partition::{Appended, LogConfig, Partition, ReadResult};
