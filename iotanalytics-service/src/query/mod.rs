//! Dataset queries: where a dataset content's SQL runs (DataFusion in this process, or Amazon
//! Athena on AWS) and how its outcome comes back.

pub mod datafusion;

#[cfg(feature = "lambda-host")]
use crate::athena::{AthenaEngine, QueryState};
use crate::error::Error;

pub use self::datafusion::{DataFusionEngine, QueryLimits};

/// How a finished query ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The CSV is stored; `result` is its `s3://` location when the engine chose it (Athena).
    Succeeded {
        /// Data rows, when known.
        rows: Option<usize>,
        /// Where the engine wrote the CSV, when it was not the backend's own results folder.
        result: Option<String>,
    },
    /// The query failed, with the reason clients see.
    Failed {
        /// The reason.
        reason: String,
    },
}

/// What starting a query gave.
pub enum Started {
    /// Running in this process; the handle resolves when it ends.
    Running(tokio::task::JoinHandle<Outcome>),
    /// Submitted to Athena under this query execution id; its state is read when asked for.
    Submitted(String),
}

/// The engine that runs dataset queries.
pub enum Engine {
    /// Apache DataFusion in this process, over the backend's stored messages.
    DataFusion(DataFusionEngine),
    /// Amazon Athena over the Glue tables the S3 backend keeps.
    #[cfg(feature = "lambda-host")]
    Athena(AthenaEngine),
}

impl Engine {
    /// Reads the state of a submitted query: `None` while it runs.
    pub async fn poll(&self, query_execution_id: &str) -> Result<Option<Outcome>, Error> {
        match self {
            // DataFusion's queries run in a task of their own and record their outcome.
            Engine::DataFusion(_) => {
                let _ = query_execution_id;
                Ok(None)
            }
            #[cfg(feature = "lambda-host")]
            Engine::Athena(athena) => Ok(match athena.state(query_execution_id).await? {
                QueryState::Running => None,
                QueryState::Succeeded { output } => Some(Outcome::Succeeded {
                    rows: None,
                    result: Some(format!("s3://{}/{}", output.bucket, output.key)),
                }),
                QueryState::Failed { reason } => Some(Outcome::Failed { reason }),
            }),
        }
    }

    /// Stops a content's query, if it still runs.
    pub async fn cancel(&self, dataset: &str, version: &str, query_execution_id: Option<&str>) {
        match (self, query_execution_id) {
            (Engine::DataFusion(df), _) => df.cancel(dataset, version),
            #[cfg(feature = "lambda-host")]
            (Engine::Athena(athena), Some(id)) => {
                if let Err(e) = athena.cancel(id).await {
                    tracing::warn!(dataset, version, error = %e, "Athena query not stopped");
                }
            }
            #[cfg(feature = "lambda-host")]
            (Engine::Athena(_), None) => {}
        }
    }
}
