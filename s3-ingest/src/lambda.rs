//! The in-process Lambda service: serves the definition's functions with the library
//! handlers, over the same real SDK clients a deployed function builds, with Lambda's
//! timeouts, reused execution environments, and injected crashes and timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

/// The function names the definition's ARNs end with.
pub const FUNCTIONS: [&str; 3] = ["launcher", "worker", "validator"];

/// Invocations of the in-process functions cut short at a random point, as a crashed or
/// timed-out Lambda invocation is: whatever the handler had done stays done, the rest never
/// happens, and Step Functions sees `Runtime.ExitError` or `Sandbox.Timedout`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FunctionFaults {
    /// Fraction (0–1) of worker invocations that crash.
    pub worker_crashes: f64,
    /// Fraction (0–1) of worker invocations that time out.
    pub worker_timeouts: f64,
    /// Fraction (0–1) of launcher invocations that crash.
    pub launcher_crashes: f64,
    /// A cut-short invocation stops at a uniformly drawn point within this many
    /// milliseconds of its start (if it has not finished by then, it is cut there).
    pub within: Duration,
    /// Seed of the draws (`None`: from entropy).
    pub seed: Option<u64>,
}

/// Counts the in-process functions keep while they run, for progress display.
#[derive(Debug, Default)]
pub struct Activity {
    /// Rows acknowledged by worker invocations.
    pub rows: AtomicU64,
    /// Objects finished.
    pub objects: AtomicU64,
    /// Worker invocations.
    pub worker_calls: AtomicU64,
    /// Re-sends reported by workers.
    pub retries: AtomicU64,
    /// Invocations cut short by an injected crash (`Runtime.ExitError`).
    pub crashes: AtomicU64,
    /// Invocations cut short by an injected timeout (`Sandbox.Timedout`).
    pub timeouts: AtomicU64,
    /// Objects the launcher has listed so far (its pages' item counts).
    pub listed: AtomicU64,
    /// Validator invocations that start or check a validation (not `prepare`).
    pub validations: AtomicU64,
    /// Every invocation's function and duration, in the order they ended, once
    /// [`Activity::record_invocations`] asked for them (benchmarks that price a run by its
    /// Lambda invocations; a long `serve` would otherwise keep one entry per invocation for
    /// ever). A worker invocation given a batch of objects (an ItemBatcher's `Items`) is named
    /// `worker-batch`.
    invocations: std::sync::Mutex<Option<Vec<(&'static str, Duration)>>>,
}

impl Activity {
    /// Starts keeping each invocation's function and duration.
    pub fn record_invocations(&self) {
        self.invocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Vec::new);
    }

    /// The invocations recorded since [`Activity::record_invocations`] or the last call,
    /// recording on.
    pub fn take_invocations(&self) -> Vec<(&'static str, Duration)> {
        self.invocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn record(&self, function: &'static str, duration: Duration) {
        if let Some(log) = self
            .invocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            log.push((function, duration));
        }
    }
}

/// Serves the definition's Lambda functions with the library handlers, in-process, over the
/// same real SDK clients a deployed function builds.
pub struct InProcessLambda {
    clients: ingest::Clients,
    worker_timeout: Duration,
    other_timeout: Duration,
    activity: Arc<Activity>,
    faults: FunctionFaults,
    rng: std::sync::Mutex<rand::rngs::StdRng>,
    /// The worker's idle execution environments. As on Lambda, an invocation takes one that
    /// is free or starts a new one, and one cut short (crash, timeout) is not used again.
    idle_workers: std::sync::Mutex<Vec<Arc<ingest::pacing::Pacing>>>,
}

/// The workflow's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Launcher,
    Worker,
    Validator,
}

impl Function {
    fn named(name: &str) -> Option<Self> {
        match name {
            "launcher" => Some(Self::Launcher),
            "worker" => Some(Self::Worker),
            "validator" => Some(Self::Validator),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        FUNCTIONS[self as usize]
    }
}

impl InProcessLambda {
    /// The functions, reporting progress into `activity` and cutting invocations short as
    /// `faults` asks.
    pub fn new(
        clients: ingest::Clients,
        worker_timeout: Duration,
        other_timeout: Duration,
        faults: FunctionFaults,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            clients,
            worker_timeout,
            other_timeout,
            activity,
            faults,
            rng: std::sync::Mutex::new(match faults.seed {
                Some(seed) => rand::SeedableRng::seed_from_u64(seed),
                None => rand::SeedableRng::from_os_rng(),
            }),
            idle_workers: std::sync::Mutex::default(),
        }
    }
}

/// The function name in a Lambda ARN or name (`arn:aws:lambda:r:a:function:NAME[:alias]`).
pub fn function_name(function: &str) -> &str {
    match function.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => name,
        [name, ..] => name,
        [] => function,
    }
}

#[async_trait]
impl local_stepfunctions::Resources for InProcessLambda {
    async fn invoke_lambda(
        &self,
        function: &str,
        payload: Value,
    ) -> Result<Value, local_stepfunctions::LambdaError> {
        let Some(which) = Function::named(function_name(function)) else {
            return Err(local_stepfunctions::LambdaError::Service {
                error: "Lambda.ResourceNotFoundException".to_owned(),
                message: format!("Function not found: {function}"),
            });
        };
        let name = which.name();
        let timeout = match which {
            Function::Worker => self.worker_timeout,
            Function::Launcher | Function::Validator => self.other_timeout,
        };
        let before = WorkerCounts::before(&payload);
        let label = if which == Function::Worker && payload.get("Items").is_some() {
            "worker-batch"
        } else {
            name
        };
        let validating = which == Function::Validator
            && payload.get("action").and_then(Value::as_str) != Some("prepare");
        let environment = (which == Function::Worker).then(|| self.worker_environment());
        let call = async {
            match which {
                Function::Launcher => ingest::handlers::launcher(&self.clients, payload).await,
                Function::Worker => {
                    let deadline = SystemTime::now() + timeout;
                    let pacing = environment.as_deref().expect("taken for the worker");
                    ingest::handlers::worker(&self.clients, pacing, payload, deadline).await
                }
                Function::Validator => {
                    let deadline = SystemTime::now() + timeout;
                    ingest::handlers::validator(&self.clients, payload, deadline).await
                }
            }
        };
        let (limit, cut_short) = self.cut_short(name).unwrap_or((timeout, None));
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(limit, call).await;
        self.activity.record(label, started.elapsed());
        if let (Ok(_), Some(environment)) = (&result, environment) {
            self.idle_workers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(environment);
        }
        match result {
            Err(_) if let Some(error_type) = cut_short => {
                let counter = if error_type == "Sandbox.Timedout" {
                    &self.activity.timeouts
                } else {
                    &self.activity.crashes
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::info!(function = name, error_type, after = ?limit, "injected: invocation cut short");
                Err(local_stepfunctions::LambdaError::Function {
                    error_type: error_type.to_owned(),
                    error_message: format!(
                        "injected fault: {name} cut short after {} ms",
                        limit.as_millis()
                    ),
                })
            }
            Ok(Ok(output)) => {
                match which {
                    Function::Worker => self.note_worker(&output, before),
                    Function::Launcher => {
                        let listed = output.get("itemCount").and_then(Value::as_u64);
                        self.activity
                            .listed
                            .fetch_add(listed.unwrap_or(0), Ordering::Relaxed);
                    }
                    Function::Validator if validating => {
                        self.activity.validations.fetch_add(1, Ordering::Relaxed);
                    }
                    Function::Validator => {}
                }
                Ok(output)
            }
            Ok(Err(error)) => {
                let report = ingest::ErrorReport::from(&error);
                Err(local_stepfunctions::LambdaError::Function {
                    error_type: report.error_type,
                    error_message: report.error_message,
                })
            }
            Err(_) => Err(local_stepfunctions::LambdaError::Function {
                error_type: "Sandbox.Timedout".to_owned(),
                error_message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            }),
        }
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<u8>, local_stepfunctions::ObjectError> {
        // Step Functions reads an ItemReader object again when a read breaks off.
        let read = || async {
            let object = self
                .clients
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| local_stepfunctions::ObjectError {
                    code: aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                        .unwrap_or("S3Error")
                        .to_owned(),
                    message: format!("s3://{bucket}/{key}: {e}"),
                })?;
            let bytes =
                object
                    .body
                    .collect()
                    .await
                    .map_err(|e| local_stepfunctions::ObjectError {
                        code: "ReadError".to_owned(),
                        message: format!("s3://{bucket}/{key}: {e}"),
                    })?;
            Ok(bytes.into_bytes().to_vec())
        };
        ingest::retry::retry(
            "ItemReader GetObject",
            4,
            ingest::retry::Backoff::SHORT,
            |e: &local_stepfunctions::ObjectError| e.code == "ReadError",
            read,
        )
        .await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), local_stepfunctions::ObjectError> {
        // A Distributed Map ResultWriter's result files and manifest, written as JSON.
        self.clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .map_err(|e| local_stepfunctions::ObjectError {
                code: aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("S3Error")
                    .to_owned(),
                message: format!("s3://{bucket}/{key}: {e}"),
            })?;
        Ok(())
    }
}

impl InProcessLambda {
    /// A free worker execution environment, or a new one.
    fn worker_environment(&self) -> Arc<ingest::pacing::Pacing> {
        self.idle_workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Whether this invocation is to be cut short: when, and with which error type.
    fn cut_short(&self, name: &str) -> Option<(Duration, Option<&'static str>)> {
        use rand::Rng;
        let f = &self.faults;
        let choices: &[(f64, &'static str)] = match name {
            "worker" => &[
                (f.worker_crashes, "Runtime.ExitError"),
                (f.worker_timeouts, "Sandbox.Timedout"),
            ],
            "launcher" => &[(f.launcher_crashes, "Runtime.ExitError")],
            _ => &[],
        };
        let mut rng = self.rng.lock().expect("rng lock");
        for &(probability, error_type) in choices {
            if probability > 0.0 && rng.random_bool(probability.min(1.0)) {
                let within = f.within.as_micros().max(1) as u64;
                let at = Duration::from_micros(rng.random_range(0..within));
                return Some((at, Some(error_type)));
            }
        }
        None
    }

    fn note_worker(&self, output: &Value, before: WorkerCounts) {
        let after = WorkerCounts::after(output);
        let activity = &self.activity;
        let add = |counter: &AtomicU64, now: u64, then: u64| {
            counter.fetch_add(now.saturating_sub(then), Ordering::Relaxed);
        };
        add(&activity.rows, after.rows, before.rows);
        add(&activity.objects, after.objects, before.objects);
        add(&activity.retries, after.retries, before.retries);
        activity.worker_calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a worker invocation's input says was counted before it, or its output says is
/// counted after it: rows, finished objects and re-sends, for one object (rows from its
/// checkpoint; the object and its re-sends once it is done) or a batch (its `counted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WorkerCounts {
    rows: u64,
    objects: u64,
    retries: u64,
}

impl WorkerCounts {
    fn before(payload: &Value) -> Self {
        let number = |pointer: &str| {
            payload
                .pointer(pointer)
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        if payload.get("Items").is_some() {
            Self {
                rows: number("/Counted/rows"),
                objects: number("/Counted/objects"),
                retries: number("/Counted/retries"),
            }
        } else {
            Self {
                rows: number("/checkpoint/rowsSent"),
                ..Self::default()
            }
        }
    }

    fn after(output: &Value) -> Self {
        let number = |pointer: &str| output.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
        if output.get("counted").is_some() {
            return Self {
                rows: number("/counted/rows"),
                objects: number("/counted/objects"),
                retries: number("/counted/retries"),
            };
        }
        let done = output.get("done").and_then(Value::as_bool) == Some(true);
        Self {
            rows: number("/rows"),
            objects: u64::from(done),
            retries: if done { number("/retries") } else { 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_out_of_arns_and_plain_names() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:worker"),
            "worker"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:worker:live"),
            "worker"
        );
        assert_eq!(function_name("launcher"), "launcher");
        assert_eq!(function_name("validator:1"), "validator");
    }

    #[test]
    fn invocations_are_kept_only_once_asked_for() {
        let activity = Activity::default();
        activity.record("worker", Duration::from_millis(5));
        assert!(activity.take_invocations().is_empty());
        activity.record_invocations();
        activity.record("worker", Duration::from_millis(5));
        activity.record("validator", Duration::from_millis(7));
        assert_eq!(activity.take_invocations().len(), 2);
        // Taken means gone, and recording goes on.
        activity.record("launcher", Duration::from_millis(1));
        assert_eq!(
            activity.take_invocations(),
            vec![("launcher", Duration::from_millis(1))]
        );
    }
}
