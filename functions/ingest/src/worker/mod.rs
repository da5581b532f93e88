//! The worker step: streams one object (or the rest of one, from a checkpoint) into a
//! channel, and returns a checkpoint when its time budget runs out.
//!
//! `ingest` tells one invocation's story (claim, read, send, checkpoint, finish); `io` holds
//! the input and output types, `claim` the ledger claim protocol, `read_loop` the loop that
//! turns bytes into batches in flight, `progress` the counts and acknowledged watermark, and
//! `reader` the S3 object reader; `batch` runs several small objects in one invocation.

mod batch;
mod claim;
mod ingest;
mod io;
mod progress;
mod read_loop;
mod reader;
#[cfg(test)]
mod test_support;

pub use batch::{BatchCounts, BatchOutput, OBJECTS_IN_FLIGHT, WorkerBatch, ingest_batch_in};
pub use ingest::{ingest_object, ingest_object_in};
pub use io::{
    BadRowPolicy, BadRowReport, Checkpoint, DEFAULT_MAX_IN_FLIGHT, MAX_REPORTED_BAD_ROWS, Outcome,
    WorkerInput, WorkerOutput,
};
