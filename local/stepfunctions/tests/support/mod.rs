//! Shared test harness: a Resources with scripted Lambda functions and S3 objects, a running
//! embedded Step Functions, and an aws-sdk-sfn client pointed at it over loopback.

#![allow(dead_code)]

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use local_stepfunctions::{Config, LambdaError, ObjectError, Resources, RunningStepFunctions};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Scripted functions:
/// - `echo`: returns its payload;
/// - `fail`: fails with `payload.errorType` (default `Boom`);
/// - `flaky`: fails with `Transient` until called `payload.succeedOn` times;
/// - `service`: a Lambda service failure (`Lambda.ServiceException`);
/// - `slow`: sleeps `payload.ms` milliseconds, tracking how many run at once;
/// - `item`: fails when `payload.fail` is true until `healed` is set; counts calls per `payload.id`;
/// - `hang`: never returns (for timeouts and StopExecution);
/// - `panic`: panics.
#[derive(Default)]
pub struct TestResources {
    pub calls: Mutex<Vec<(String, Value)>>,
    pub objects: Mutex<HashMap<(String, String), Vec<u8>>>,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub healed: AtomicBool,
    pub per_item: Mutex<HashMap<String, u32>>,
    pub call_times: Mutex<Vec<Instant>>,
}

impl TestResources {
    pub fn calls_to(&self, function: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, _)| f == function)
            .count()
    }
}

#[async_trait]
impl Resources for TestResources {
    async fn invoke_lambda(&self, function: &str, payload: Value) -> Result<Value, LambdaError> {
        let name = function.rsplit(':').next().unwrap_or(function).to_string();
        self.calls
            .lock()
            .unwrap()
            .push((name.clone(), payload.clone()));
        self.call_times.lock().unwrap().push(Instant::now());
        match name.as_str() {
            "echo" => Ok(payload),
            "fail" => Err(LambdaError::Function {
                error_type: payload["errorType"].as_str().unwrap_or("Boom").to_string(),
                error_message: "it failed".into(),
            }),
            "flaky" => {
                let n = self.calls_to("flaky") as u64;
                if n >= payload["succeedOn"].as_u64().unwrap_or(u64::MAX) {
                    Ok(json!({"attempts": n}))
                } else {
                    Err(LambdaError::Function {
                        error_type: "Transient".into(),
                        error_message: format!("attempt {n}"),
                    })
                }
            }
            "service" => Err(LambdaError::Service {
                error: "Lambda.ServiceException".into(),
                message: "the service is unavailable".into(),
            }),
            "slow" => {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(payload["ms"].as_u64().unwrap_or(50)))
                    .await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                Ok(payload)
            }
            "item" => {
                let id = payload["id"].to_string();
                *self.per_item.lock().unwrap().entry(id).or_default() += 1;
                if payload["fail"] == json!(true) && !self.healed.load(Ordering::SeqCst) {
                    Err(LambdaError::Function {
                        error_type: "ItemBroken".into(),
                        error_message: format!("item {} is broken", payload["id"]),
                    })
                } else {
                    Ok(json!({"id": payload["id"], "rows": 10}))
                }
            }
            "panic" => panic!("the test function panicked"),
            "hang" => {
                futures::future::pending::<()>().await;
                unreachable!()
            }
            other => Err(LambdaError::Service {
                error: "Lambda.ResourceNotFoundException".into(),
                message: format!("Function not found: {other}"),
            }),
        }
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ObjectError> {
        self.objects
            .lock()
            .unwrap()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| ObjectError {
                code: "NoSuchKey".into(),
                message: "The specified key does not exist.".into(),
            })
    }

    /// Keeps the object; the bucket `denied` refuses writes as S3 does without permission.
    async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), ObjectError> {
        if bucket == "denied" {
            return Err(ObjectError {
                code: "AccessDenied".into(),
                message: "Access Denied".into(),
            });
        }
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.to_string(), key.to_string()), body);
        Ok(())
    }
}

impl TestResources {
    /// An object written through `put_object`, as JSON.
    pub fn json_object(&self, bucket: &str, key: &str) -> Value {
        let objects = self.objects.lock().unwrap();
        let bytes = objects
            .get(&(bucket.to_string(), key.to_string()))
            .unwrap_or_else(|| panic!("s3://{bucket}/{key} was not written"));
        serde_json::from_slice(bytes).expect("the object is JSON")
    }
}

/// The SDK sends StartSyncExecution to the `sync-` host prefix of the endpoint (AWS's
/// `sync-states.<region>.amazonaws.com`); on loopback the prefix is taken off again.
#[derive(Debug)]
struct NoHostPrefix;

impl aws_sdk_sfn::config::Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_sfn::config::RuntimeComponents,
        _cfg: &mut aws_sdk_sfn::config::ConfigBag,
    ) -> Result<(), aws_sdk_sfn::error::BoxError> {
        let uri = context.request().uri().replace("://sync-", "://");
        context.request_mut().set_uri(uri)?;
        Ok(())
    }
}

pub struct Harness {
    pub sfn: RunningStepFunctions,
    pub client: Client,
    pub resources: Arc<TestResources>,
    pub dir: tempfile::TempDir,
}

pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sfn::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .interceptor(NoHostPrefix)
        .build();
    Client::from_conf(config)
}

pub async fn start_at(
    dir: &Path,
    resources: Arc<TestResources>,
    time_scale: f64,
) -> RunningStepFunctions {
    let mut config = Config::new(dir, resources);
    config.time_scale = time_scale;
    local_stepfunctions::start(config)
        .await
        .expect("the embedded Step Functions starts")
}

pub async fn harness() -> Harness {
    harness_scaled(0.01).await
}

pub async fn harness_scaled(time_scale: f64) -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let resources = Arc::new(TestResources::default());
    let sfn = start_at(dir.path(), resources.clone(), time_scale).await;
    let client = client(&sfn.endpoint_url());
    Harness {
        sfn,
        client,
        resources,
        dir,
    }
}

impl Harness {
    /// Creates a state machine through the API and returns its ARN.
    pub async fn create(&self, name: &str, definition: &Value) -> String {
        self.client
            .create_state_machine()
            .name(name)
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::123456789012:role/test")
            .send()
            .await
            .expect("CreateStateMachine succeeds")
            .state_machine_arn()
            .to_string()
    }

    /// Starts an execution and returns its ARN.
    pub async fn start(&self, state_machine_arn: &str, input: &Value) -> String {
        self.client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .input(input.to_string())
            .send()
            .await
            .expect("StartExecution succeeds")
            .execution_arn()
            .to_string()
    }

    /// Polls DescribeExecution until the execution is no longer RUNNING.
    pub async fn wait(&self, execution_arn: &str) -> DescribeExecutionOutput {
        wait_with(&self.client, execution_arn).await
    }

    /// The message CreateStateMachine refuses `definition` with (always InvalidDefinition),
    /// or `None` when it accepts it.
    pub async fn refusal(&self, name: &str, definition: &Value) -> Option<String> {
        match self
            .client
            .create_state_machine()
            .name(name)
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::123456789012:role/test")
            .send()
            .await
        {
            Ok(_) => None,
            Err(e) => {
                let e = e.into_service_error();
                assert!(e.is_invalid_definition(), "{e:?}");
                Some(e.to_string())
            }
        }
    }

    /// Runs a machine that must succeed and answers its output.
    #[allow(dead_code, reason = "not every test file runs machines to success")]
    pub async fn succeeds(&self, name: &str, definition: &Value, input: Value) -> Value {
        let d = self.run(name, definition, &input).await;
        assert_eq!(
            *d.status(),
            aws_sdk_sfn::types::ExecutionStatus::Succeeded,
            "{:?}",
            d.cause()
        );
        output(&d)
    }

    /// Creates, starts and waits.
    pub async fn run(
        &self,
        name: &str,
        definition: &Value,
        input: &Value,
    ) -> DescribeExecutionOutput {
        let arn = self.create(name, definition).await;
        let execution = self.start(&arn, input).await;
        self.wait(&execution).await
    }

    /// All history event types of an execution, following nextToken.
    pub async fn event_types(&self, execution_arn: &str) -> Vec<String> {
        self.history(execution_arn)
            .await
            .iter()
            .map(|e| e.r#type().as_str().to_string())
            .collect()
    }

    pub async fn history(&self, execution_arn: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_execution_history()
                .execution_arn(execution_arn)
                .max_results(1000)
                .set_next_token(token.clone())
                .send()
                .await
                .expect("GetExecutionHistory succeeds");
            out.extend(page.events().iter().cloned());
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => return out,
            }
        }
    }
}

pub async fn wait_with(client: &Client, execution_arn: &str) -> DescribeExecutionOutput {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .expect("DescribeExecution succeeds");
        if *d.status() != ExecutionStatus::Running {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the execution {execution_arn} did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn output(d: &DescribeExecutionOutput) -> Value {
    serde_json::from_str(
        d.output()
            .unwrap_or_else(|| panic!("no output: {:?} {:?}", d.error(), d.cause())),
    )
    .expect("the output is JSON")
}
