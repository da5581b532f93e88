//! Section 6: many small objects through the whole local workflow: wall time, objects/s, and
//! what each object costs in S3 requests, state transitions, Express executions, Lambda
//! invocations and IoT Analytics requests. The runs here also feed the cost section.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use s3_ingest::sample;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames, ensure_iotanalytics};
use serde_json::{Value, json};

use crate::Bench;
use crate::cost_model::{self, PerObject};
use crate::prices;
use crate::report::{Section, Table, Verdict, thousands};

/// Options of the small-objects section.
#[derive(Debug, Clone, Args)]
pub struct SmallObjectsArgs {
    /// Generated objects besides the sample data set.
    #[arg(long, default_value_t = 10_000)]
    pub small_objects: u64,
    /// Size of each generated object, in KB (10^3 bytes).
    #[arg(long, default_value_t = 20)]
    pub small_object_kb: u64,
    /// Objects (or batches) ingested at once (the Distributed Maps' MaxConcurrency).
    #[arg(long, default_value_t = 10)]
    pub small_concurrency: u32,
    /// Times the README's first command (`s3-ingest run`, release binary) runs; 0 skips it.
    #[arg(long, default_value_t = 5)]
    pub sample_runs: usize,
}

/// The objects of a run.
#[derive(Debug, Clone, Copy)]
pub enum Objects {
    /// The sample data set (100 objects, 56,570 rows).
    Sample,
    /// `count` generated objects of `bytes` bytes each, in the sample's shape.
    Generated {
        /// How many.
        count: u64,
        /// Bytes each.
        bytes: u64,
    },
}

impl Objects {
    /// Describes them.
    pub fn label(&self) -> String {
        match self {
            Self::Sample => "sample data set".to_owned(),
            Self::Generated { count, bytes } => {
                format!("{} objects of {}", thousands(*count as f64), size(*bytes))
            }
        }
    }

    /// Writes them into the bucket's directory; returns each object's rows.
    fn write(&self, bucket_dir: &Path) -> anyhow::Result<Vec<u64>> {
        match *self {
            Self::Sample => {
                let files = sample::files();
                crate::quota::write_sample_subset(bucket_dir, files.len())?;
                Ok(files.into_iter().map(|(_, _, rows)| rows).collect())
            }
            Self::Generated { count, bytes } => (0..count)
                .map(|i| crate::data::write_csv(&bucket_dir.join(crate::scale::key(i)), bytes))
                .collect(),
        }
    }
}

/// `20000` → `20 KB`, `100000000` → `100 MB`.
fn size(bytes: u64) -> String {
    if bytes >= crate::data::MB {
        format!("{} MB", bytes / crate::data::MB)
    } else {
        format!("{} KB", bytes / 1000)
    }
}

/// S3 requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S3Requests {
    /// GetObject.
    pub get: u64,
    /// PutObject, CopyObject, multipart parts.
    pub put: u64,
    /// ListObjects(V2), ListBuckets.
    pub list: u64,
    /// HeadObject, HeadBucket.
    pub head: u64,
    /// Anything else (DeleteObject, ...).
    pub other: u64,
}

impl S3Requests {
    fn add(&mut self, operation: &str, count: u64) {
        let slot = match operation {
            "GetObject" => &mut self.get,
            "PutObject"
            | "CopyObject"
            | "UploadPart"
            | "CreateMultipartUpload"
            | "CompleteMultipartUpload"
            | "PostObject" => &mut self.put,
            op if op.starts_with("List") => &mut self.list,
            op if op.starts_with("Head") => &mut self.head,
            _ => &mut self.other,
        };
        *slot += count;
    }

    /// Requests priced as PUT/LIST.
    pub fn put_list(&self) -> u64 {
        self.put + self.list
    }

    /// Requests priced as GET (HEAD and the rest included).
    pub fn get_and_rest(&self) -> u64 {
        self.get + self.head + self.other
    }
}

/// What one run of the workflow did.
#[derive(Debug, Clone)]
pub struct RunCounts {
    /// The objects.
    pub objects: u64,
    /// Their rows.
    pub rows: u64,
    /// From StartExecution to the end of the last execution.
    pub wall: Duration,
    /// The last execution's status (and failure).
    pub status: String,
    /// S3 requests of the workflow (source, ledger and manifest buckets).
    pub s3_workflow: S3Requests,
    /// S3 requests of the IoT Analytics-compatible service (its storage bucket).
    pub s3_service: S3Requests,
    /// States entered in every Standard execution (parent and Standard children).
    pub transitions: u64,
    /// Standard executions (parent, continuations and Map Run children).
    pub standard_executions: u64,
    /// Each Lambda invocation's function and duration.
    pub invocations: Vec<(&'static str, Duration)>,
    /// BatchPutMessage requests: ⌈rows ÷ 100⌉ per object plus the workers' re-sends.
    pub batch_put_messages: u64,
}

impl RunCounts {
    /// Whether the run ended well.
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// Invocations of worker batches, each of which runs in an Express child.
    pub fn express_children(&self) -> u64 {
        self.invocations
            .iter()
            .filter(|(f, _)| *f == "worker-batch")
            .count() as u64
    }

    /// Invocations by function (batch workers as `worker`): (count, total duration).
    pub fn by_function(&self) -> BTreeMap<&'static str, (u64, Duration)> {
        let mut out: BTreeMap<&'static str, (u64, Duration)> = BTreeMap::new();
        for &(function, duration) in &self.invocations {
            let name = if function == "worker-batch" {
                "worker"
            } else {
                function
            };
            let slot = out.entry(name).or_default();
            slot.0 += 1;
            slot.1 += duration;
        }
        out
    }

    /// The run's figures per object, for the cost model. Express children are billed for
    /// their batch worker's duration (the child does nothing else of note) at 64 MB; Lambda
    /// durations are the local ones.
    pub fn per_object(&self) -> PerObject {
        let n = self.objects.max(1) as f64;
        let lambda = |(f, d): &(&'static str, Duration)| {
            let name = if *f == "worker-batch" { "worker" } else { f };
            (name, *d)
        };
        let express = self
            .invocations
            .iter()
            .filter(|(f, _)| *f == "worker-batch")
            .map(|&(_, d)| ("express", d));
        PerObject {
            transitions: self.transitions as f64 / n,
            express_requests: self.express_children() as f64 / n,
            express_gb_seconds: cost_model::billed_gb_seconds(
                express,
                prices::EXPRESS_STEP_MS,
                prices::EXPRESS_CHUNK_MB,
                |_| prices::EXPRESS_CHUNK_MB,
            ) / n,
            lambda_requests: self.invocations.len() as f64 / n,
            lambda_gb_seconds: cost_model::billed_gb_seconds(
                self.invocations.iter().map(lambda),
                prices::LAMBDA_STEP_MS,
                1.0,
                prices::memory_mb,
            ) / n,
            s3_put_list: self.s3_workflow.put_list() as f64 / n,
            s3_get: self.s3_workflow.get_and_rest() as f64 / n,
            service_requests: self.batch_put_messages as f64 / n,
            service_s3_put_list: self.s3_service.put_list() as f64 / n,
            service_s3_get: self.s3_service.get_and_rest() as f64 / n,
        }
    }
}

const BUCKET: &str = "bench-small";
const SERVICE_BUCKET: &str = "bench-iotanalytics";

/// Runs the whole workflow over `objects` on a fresh stack whose IoT Analytics service keeps
/// its data in the embedded S3 (as on AWS); `small_object_bytes` overrides the workflow's
/// `smallObjectBytes` (0: every object alone in a Standard child, as before batching).
pub async fn measure(
    bench: &Bench,
    name: &str,
    objects: Objects,
    small_object_bytes: Option<u64>,
    concurrency: u32,
) -> anyhow::Result<RunCounts> {
    let dir = bench.section_dir(name)?;
    let data_dir = dir.join("stack");
    crate::progress(format!("{name}: writing the {}", objects.label()));
    let rows = objects.write(&data_dir.join("s3").join(BUCKET))?;
    let names = WorkflowNames {
        bucket: BUCKET.to_owned(),
        channel: "bench_small_channel".to_owned(),
        pipeline: "bench_small_pipeline".to_owned(),
        datastore: "bench_small_datastore".to_owned(),
        dataset: "bench_small_dataset".to_owned(),
        ..WorkflowNames::default()
    };
    let mut options = StackOptions::new(&data_dir);
    options.channel_quota = u32::MAX;
    options.iotanalytics_storage = Some(iotanalytics_service::S3Location {
        bucket: SERVICE_BUCKET.to_owned(),
        prefix: String::new(),
    });
    let stack = LocalStack::start(options, &names).await?;
    stack.activity.record_invocations();
    let result = async {
        ensure_iotanalytics(&stack.clients.iotanalytics, &names).await?;
        let before = stack.s3.requests().snapshot();
        crate::progress(format!(
            "{name}: the workflow over the {}, smallObjectBytes {}",
            objects.label(),
            small_object_bytes.map_or("default".to_owned(), |b| b.to_string())
        ));
        let mut input = json!({
            "bucket": names.bucket,
            "channelName": names.channel,
            "datastoreName": names.datastore,
            "datasetName": names.dataset,
            "maxConcurrency": concurrency,
            "validationPollSeconds": 1,
        });
        if let Some(bytes) = small_object_bytes {
            input["smallObjectBytes"] = json!(bytes);
        }
        let run = crate::scale::run_to_end(&stack, input, name).await?;
        let status = match run.failure {
            None => run.status,
            Some(failure) => format!("{} ({failure})", run.status),
        };
        let wall = run.elapsed;
        let after = stack.s3.requests().snapshot();
        let (mut s3_workflow, mut s3_service) = (S3Requests::default(), S3Requests::default());
        for ((bucket, operation), count) in after {
            let count = count
                - before
                    .get(&(bucket.clone(), operation.clone()))
                    .unwrap_or(&0);
            if bucket == SERVICE_BUCKET {
                s3_service.add(&operation, count);
            } else {
                s3_workflow.add(&operation, count);
            }
        }
        let invocations = stack.activity.take_invocations();
        let retries = stack
            .activity
            .retries
            .load(std::sync::atomic::Ordering::Relaxed);
        anyhow::Ok((status, wall, s3_workflow, s3_service, invocations, retries))
    }
    .await;
    stack.shutdown().await;
    let result = result.and_then(
        |(status, wall, s3_workflow, s3_service, invocations, retries)| {
            let (standard_executions, transitions) =
                states_entered(&data_dir.join("stepfunctions"))?;
            Ok(RunCounts {
                objects: rows.len() as u64,
                rows: rows.iter().sum(),
                wall,
                status,
                s3_workflow,
                s3_service,
                transitions,
                standard_executions,
                invocations,
                batch_put_messages: rows.iter().map(|r| r.div_ceil(100)).sum::<u64>() + retries,
            })
        },
    );
    bench.clean(&dir);
    result
}

/// Standard executions stored by the local Step Functions (complete once it is shut down)
/// and the states entered in all of them: (executions, states entered).
fn states_entered(stepfunctions_dir: &Path) -> anyhow::Result<(u64, u64)> {
    let dir = stepfunctions_dir.join("executions");
    let (mut executions, mut entered) = (0, 0);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".events.jsonl"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        executions += 1;
        entered += count_states_entered(&text);
    }
    Ok((executions, entered))
}

/// `*StateEntered` events in a history of one JSON event per line.
fn count_states_entered(jsonl: &str) -> u64 {
    jsonl
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            event
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("StateEntered"))
        })
        .count() as u64
}

/// The table rows of one run: one figure per row.
pub fn rows(table: &mut Table, label: &str, run: &RunCounts) {
    let n = run.objects.max(1) as f64;
    let per = |count: u64| format!("{:.2}", count as f64 / n);
    let mut row = |figure: &str, value: String, verdict: Verdict| {
        table.row(vec![
            label.to_owned(),
            figure.to_owned(),
            value,
            verdict.cell(),
        ]);
    };
    row("status", run.status.clone(), Verdict::of(run.succeeded()));
    row(
        "objects, rows, wall time, objects/s",
        format!(
            "{} objects, {} rows, {:.2} s, {:.0} objects/s",
            thousands(run.objects as f64),
            thousands(run.rows as f64),
            run.wall.as_secs_f64(),
            run.objects as f64 / run.wall.as_secs_f64().max(1e-9)
        ),
        Verdict::Info,
    );
    let s3 = |r: &S3Requests| {
        format!(
            "GET {}, PUT {}, LIST {}, HEAD {}, other {}",
            per(r.get),
            per(r.put),
            per(r.list),
            per(r.head),
            per(r.other)
        )
    };
    row(
        "S3 requests per object, workflow",
        s3(&run.s3_workflow),
        Verdict::Info,
    );
    row(
        "S3 requests per object, IoT Analytics service (its S3 storage)",
        s3(&run.s3_service),
        Verdict::Info,
    );
    row(
        "Standard state transitions per object (states entered)",
        format!(
            "{} ({} in {} Standard executions)",
            per(run.transitions),
            thousands(run.transitions as f64),
            thousands(run.standard_executions as f64)
        ),
        Verdict::Info,
    );
    let express: Vec<Duration> = run
        .invocations
        .iter()
        .filter(|(f, _)| *f == "worker-batch")
        .map(|&(_, d)| d)
        .collect();
    let mean_ms = |total: Duration, count: u64| total.as_secs_f64() * 1000.0 / count.max(1) as f64;
    row(
        "Express child executions per object (mean duration: its batch worker's)",
        format!(
            "{} ({}, mean {:.1} ms)",
            per(express.len() as u64),
            thousands(express.len() as f64),
            mean_ms(express.iter().sum(), express.len() as u64)
        ),
        Verdict::Info,
    );
    let functions: Vec<String> = run
        .by_function()
        .into_iter()
        .map(|(f, (count, total))| {
            format!("{f} {} (mean {:.1} ms)", per(count), mean_ms(total, count))
        })
        .collect();
    row(
        "Lambda invocations per object, by function",
        functions.join(", "),
        Verdict::Info,
    );
    row(
        "IoT Analytics BatchPutMessage requests per object (⌈rows ÷ 100⌉ per object + re-sends)",
        per(run.batch_put_messages),
        Verdict::Info,
    );
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &SmallObjectsArgs) -> anyhow::Result<Section> {
    let mut table = Table::new(&["objects", "figure", "measured", "verdict"]);
    let mut checks = Vec::new();
    if args.sample_runs > 0 {
        let runs = crate::sample_run::measure(bench, args.sample_runs)?;
        checks.push(crate::sample_run::report(&mut table, runs.as_ref()));
    }
    let generated = Objects::Generated {
        count: args.small_objects,
        bytes: args.small_object_kb * 1000,
    };
    for (name, objects) in [
        ("small-sample", Objects::Sample),
        ("small-generated", generated),
    ] {
        let run = measure(bench, name, objects, None, args.small_concurrency).await?;
        rows(&mut table, &objects.label(), &run);
    }
    Ok(Section {
        title: "6. Small objects".to_owned(),
        intro: format!(
            "First the README's first command as a user runs it: the `s3-ingest` release \
             binary's `run` with its default flags over the sample data set, each run on a \
             fresh data directory after a `sync` (an idle disk), timed from spawn to exit (the stack's start, the workflow, \
             the validation and the shutdown). Then the whole local workflow with its default settings (small objects in batches \
             through Express children), concurrency {}, channel quota unlimited, on a fresh \
             stack for each data set; the IoT Analytics-compatible service keeps its data in \
             the embedded S3, as it does on AWS. S3 requests are counted by the embedded S3 \
             per bucket and operation; state transitions are the states entered in every \
             stored Standard history; Lambda invocations and their durations are recorded by \
             the in-process Lambda service; Express children keep no history, so each is \
             counted as its batch worker invocation, and its duration as that invocation's. \
             BatchPutMessage requests are ⌈rows ÷ 100⌉ per object (a batch never spans \
             objects: `messageId` is the row's number within its object) plus re-sends.",
            args.small_concurrency
        ),
        table,
        notes: Vec::new(),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_operations_fall_into_their_price_classes() {
        let mut r = S3Requests::default();
        for op in [
            "GetObject",
            "PutObject",
            "ListObjectsV2",
            "HeadObject",
            "DeleteObject",
        ] {
            r.add(op, 2);
        }
        assert_eq!((r.get, r.put, r.list, r.head, r.other), (2, 2, 2, 2, 2));
        assert_eq!(r.put_list(), 4);
        assert_eq!(r.get_and_rest(), 6);
    }

    #[test]
    fn only_state_entered_events_count_as_transitions() {
        let jsonl = concat!(
            "{\"id\":1,\"kind\":\"ExecutionStarted\"}\n",
            "{\"id\":2,\"kind\":\"TaskStateEntered\"}\n",
            "{\"id\":3,\"kind\":\"TaskStateExited\"}\n",
            "{\"id\":4,\"kind\":\"ChoiceStateEntered\"}\n"
        );
        assert_eq!(count_states_entered(jsonl), 2);
    }

    #[test]
    fn batch_workers_count_as_express_children_and_as_worker_invocations() {
        let run = RunCounts {
            objects: 100,
            rows: 1000,
            wall: Duration::from_secs(1),
            status: "SUCCEEDED".to_owned(),
            s3_workflow: S3Requests::default(),
            s3_service: S3Requests::default(),
            transitions: 10,
            standard_executions: 1,
            invocations: vec![
                ("launcher", Duration::from_millis(5)),
                ("worker-batch", Duration::from_millis(30)),
                ("worker-batch", Duration::from_millis(150)),
            ],
            batch_put_messages: 100,
        };
        assert_eq!(run.express_children(), 2);
        assert_eq!(run.by_function()["worker"].0, 2);
        let per = run.per_object();
        assert!((per.express_requests - 0.02).abs() < 1e-12);
        assert!((per.lambda_requests - 0.03).abs() < 1e-12);
        // 100 ms + 200 ms at 64 MB, over 100 objects.
        assert!((per.express_gb_seconds - 0.3 * 0.0625 / 100.0).abs() < 1e-12);
    }
}
