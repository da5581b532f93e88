//! Errors: the crate's one error enum (API and definition failures) and the runtime error value
//! that flows through a state machine (`{"Error", "Cause"}`).

use serde::{Deserialize, Serialize};

/// Everything that can go wrong outside of a running state machine: loading a definition,
/// an API call, the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The definition is invalid or uses something this executor does not support.
    /// `state` is `None` for top-level fields.
    #[error("invalid definition: {}field {field:?}: {message}", state.as_ref().map(|s| format!("state {s:?}: ")).unwrap_or_default())]
    InvalidDefinition {
        /// The state the problem is in (`None` for the top level).
        state: Option<String>,
        /// The field that is wrong, as written in the definition.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `${Name}` placeholder has no value in the substitution map.
    #[error("the definition uses the placeholder ${{{0}}}, which has no substitution")]
    UnknownPlaceholder(String),
    /// A request parameter is invalid (awsJson `ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// An ARN is malformed.
    #[error("invalid ARN: {0}")]
    InvalidArn(String),
    /// A name is malformed.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// An execution input is not JSON.
    #[error("invalid execution input: {0}")]
    InvalidExecutionInput(String),
    /// A pagination token is not one this server issued.
    #[error("invalid pagination token")]
    InvalidToken,
    /// No state machine has this ARN.
    #[error("state machine does not exist: {0}")]
    StateMachineDoesNotExist(String),
    /// A state machine with this name exists with another definition.
    #[error("state machine already exists: {0}")]
    StateMachineAlreadyExists(String),
    /// No execution has this ARN.
    #[error("execution does not exist: {0}")]
    ExecutionDoesNotExist(String),
    /// An execution with this name exists with another input, or has finished.
    #[error("execution already exists: {0}")]
    ExecutionAlreadyExists(String),
    /// RedriveExecution was called on an execution that cannot be redriven.
    #[error("execution cannot be redriven: {0}")]
    ExecutionNotRedrivable(String),
    /// The operation is not available for this type of state machine (StartSyncExecution on a
    /// STANDARD one, ListExecutions on an EXPRESS one).
    #[error("{0}")]
    StateMachineTypeNotSupported(String),
    /// No map run has this ARN.
    #[error("map run does not exist: {0}")]
    ResourceNotFound(String),
    /// The X-Amz-Target names an operation this server does not implement.
    #[error("operation not supported by the local Step Functions: {0}")]
    UnknownOperation(String),
    /// Reading or writing the data directory failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A stored or received document is not valid JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// The awsJson1_0 `__type` for this error, as the Step Functions API names it.
    pub fn aws_type(&self) -> &'static str {
        match self {
            Error::InvalidDefinition { .. } | Error::UnknownPlaceholder(_) => "InvalidDefinition",
            Error::Validation(_) => "ValidationException",
            Error::InvalidArn(_) => "InvalidArn",
            Error::InvalidName(_) => "InvalidName",
            Error::InvalidExecutionInput(_) => "InvalidExecutionInput",
            Error::InvalidToken => "InvalidToken",
            Error::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            Error::StateMachineAlreadyExists(_) => "StateMachineAlreadyExists",
            Error::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            Error::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            Error::ExecutionNotRedrivable(_) => "ExecutionNotRedrivable",
            Error::ResourceNotFound(_) => "ResourceNotFound",
            Error::StateMachineTypeNotSupported(_) => "StateMachineTypeNotSupported",
            Error::UnknownOperation(_) => "UnknownOperationException",
            Error::Io(_) | Error::Json(_) => "InternalFailure",
        }
    }

    pub(crate) fn definition(
        state: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::InvalidDefinition {
            state: state.map(str::to_string),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A runtime error inside an execution: the `Error` name and `Cause` text that Retry and Catch
/// match on and that a failed execution reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesError {
    /// The error name, e.g. `States.Runtime` or a Lambda `errorType`.
    pub error: String,
    /// The human-readable cause.
    pub cause: String,
}

impl StatesError {
    /// An error with any name.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> StatesError {
        StatesError {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// `States.Runtime`: never retried or caught; fails the execution.
    pub fn runtime(cause: impl Into<String>) -> StatesError {
        StatesError::new("States.Runtime", cause)
    }

    /// `States.IntrinsicFailure`.
    pub fn intrinsic(cause: impl Into<String>) -> StatesError {
        StatesError::new("States.IntrinsicFailure", cause)
    }

    /// Whether Retry and Catch may handle this error at all (AWS: `States.Runtime` and
    /// `States.DataLimitExceeded` are terminal).
    pub fn is_terminal(&self) -> bool {
        self.error == "States.Runtime" || self.error == "States.DataLimitExceeded"
    }

    /// Whether a Retrier or Catcher `ErrorEquals` list matches this error.
    pub fn matches(&self, names: &[String]) -> bool {
        if self.is_terminal() {
            return false;
        }
        names.iter().any(|name| match name.as_str() {
            "States.ALL" => true,
            // AWS: a wildcard for every error name except States.Timeout.
            "States.TaskFailed" => self.error != "States.Timeout",
            other => other == self.error,
        })
    }

    /// The `error` and `cause` members of a history event or a DescribeExecution response, each
    /// left out when empty, as AWS leaves them out.
    pub(crate) fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut details = serde_json::Map::new();
        if !self.error.is_empty() {
            details.insert("error".into(), self.error.clone().into());
        }
        if !self.cause.is_empty() {
            details.insert("cause".into(), self.cause.clone().into());
        }
        details
    }

    /// The error as AWS reports it from a state: the errors the interpreter raises itself get
    /// the cause prefix "An error occurred while executing the state 'X' (entered at the event
    /// id #N). ", once (an error coming out of a nested state already names that state).
    pub(crate) fn located(self, state: &str, entered_event_id: u64) -> StatesError {
        const PREFIX: &str = "An error occurred while executing the state";
        let raised_by_interpreter = matches!(
            self.error.as_str(),
            "States.Runtime"
                | "States.IntrinsicFailure"
                | "States.ResultPathMatchFailure"
                | "States.ParameterPathFailure"
                | "States.QueryEvaluationError"
        );
        if !raised_by_interpreter || self.cause.starts_with(PREFIX) {
            return self;
        }
        let cause = format!(
            "{PREFIX} '{state}' (entered at the event id #{entered_event_id}). {}",
            self.cause
        );
        StatesError::new(self.error, cause)
    }

    /// The error output a Catcher passes on: `{"Error": ..., "Cause": ...}`.
    pub fn to_output(&self) -> serde_json::Value {
        serde_json::json!({"Error": self.error, "Cause": self.cause})
    }
}

#[cfg(test)]
mod tests {
    use super::StatesError;

    #[test]
    fn interpreter_errors_name_their_state_once_and_task_errors_are_left_alone() {
        let located = StatesError::runtime("Invalid path").located("Inner", 4);
        assert_eq!(
            located.cause,
            "An error occurred while executing the state 'Inner' (entered at the event id #4). Invalid path"
        );
        assert_eq!(located.clone().located("Outer", 2), located);
        let task = StatesError::new("Lambda.Unknown", "it failed").located("Call", 2);
        assert_eq!(task.cause, "it failed");
    }
}
