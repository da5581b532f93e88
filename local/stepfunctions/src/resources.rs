//! What the host provides: Lambda functions and S3 objects, reached by the executor's Task
//! states, Distributed Map ItemReaders and ResultWriters.

use async_trait::async_trait;
use serde_json::Value;

/// Why a Lambda invocation did not return a result.
#[derive(Debug, Clone, PartialEq)]
pub enum LambdaError {
    /// The function ran and failed (AWS: `X-Amz-Function-Error`). The state's error name is
    /// `error_type` and its cause is the JSON `{"errorType", "errorMessage"}`.
    Function {
        /// The error type the function reported (becomes the Step Functions error name).
        error_type: String,
        /// The message the function reported.
        error_message: String,
    },
    /// The Lambda service failed, e.g. `Lambda.ServiceException`,
    /// `Lambda.TooManyRequestsException` or `Lambda.ResourceNotFoundException`: `error` is used
    /// as the error name as is.
    Service {
        /// The full error name, e.g. `Lambda.ServiceException`.
        error: String,
        /// The cause text.
        message: String,
    },
}

/// Why an S3 object could not be read or written.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectError {
    /// A short code such as `NoSuchKey` or `NoSuchBucket`.
    pub code: String,
    /// The cause text.
    pub message: String,
}

/// The host side of the executor: how Task and ItemReader resources are served. One
/// implementation serves every state machine of a running instance.
#[async_trait]
pub trait Resources: Send + Sync + 'static {
    /// Invokes a Lambda function synchronously. `function` is exactly what the definition says:
    /// a name, a `name:alias`, or a (partial) ARN; resolving it is the host's job. The host
    /// should apply the function's configured timeout itself and report it as a function error
    /// (`error_type` `Sandbox.Timedout`, as Lambda does).
    async fn invoke_lambda(&self, function: &str, payload: Value) -> Result<Value, LambdaError>;

    /// Reads an S3 object (Distributed Map ItemReader).
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ObjectError>;

    /// Writes an S3 object (Distributed Map ResultWriter: the Map Run's result files and
    /// manifest). A host without S3 writes keeps this default, which refuses with
    /// `AccessDenied`, so a ResultWriter fails with `States.ResultWriterFailed`.
    async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), ObjectError> {
        let _ = body;
        Err(ObjectError {
            code: "AccessDenied".into(),
            message: format!("this host does not write S3 objects (s3://{bucket}/{key})"),
        })
    }
}

/// A Resources that has no functions and no objects: every Task fails with
/// `Lambda.ResourceNotFoundException`. Useful for state machines that only use Pass, Choice,
/// Wait and Map.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoResources;

#[async_trait]
impl Resources for NoResources {
    async fn invoke_lambda(&self, function: &str, _payload: Value) -> Result<Value, LambdaError> {
        Err(LambdaError::Service {
            error: "Lambda.ResourceNotFoundException".into(),
            message: format!("Function not found: {function}"),
        })
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ObjectError> {
        Err(ObjectError {
            code: "NoSuchKey".into(),
            message: format!("s3://{bucket}/{key} does not exist"),
        })
    }
}
