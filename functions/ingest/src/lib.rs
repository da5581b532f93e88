//! Every rule of the S3 to AWS IoT Analytics ingestion workflow.
//!
//! The three Lambda functions (`launcher`, `worker`, `validator`) are thin wrappers around
//! [`handlers`], which parse the event and call [`launcher::list_page`],
//! [`worker::ingest_object_in`] and [`validator::handle`]; the local Step Functions executor
//! calls the same handlers in-process.

pub mod batches;
pub mod checkpoint;
pub mod clients;
pub mod completeness;
pub mod error;
pub mod failures;
pub mod handlers;
mod http;
pub mod launcher;
pub mod ledger;
pub mod pacing;
pub mod payload;
pub mod retry;
pub mod rows;
pub mod sender;
pub mod service_credentials;
mod service_errors;
pub mod setup;
pub mod validator;
pub mod worker;

pub use clients::Clients;
pub use error::{ErrorReport, IngestError};
