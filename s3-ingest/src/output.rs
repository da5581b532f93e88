//! How commands print their result: text for people, or one JSON document for scripts.

use serde_json::{Value, json};

use crate::failed_items::FailedItem;

/// `--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people (the default).
    #[default]
    Text,
    /// One JSON document on stdout, for scripts; logs stay on stderr.
    Json,
}

/// A failed item as JSON.
pub fn failed_item(item: &FailedItem) -> Value {
    json!({
        "executionArn": item.execution_arn,
        "key": item.key,
        "error": item.error,
        "cause": item.cause,
    })
}
