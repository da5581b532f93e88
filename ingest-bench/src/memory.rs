//! Section 2: the worker's peak RSS on a large object, measured in a process that holds only
//! the worker (this binary re-executed with the hidden `worker-child` command), beside the
//! Python baseline's.

use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames};
use serde_json::{Value, json};

use crate::Bench;
use crate::data::{self, MB};
use crate::report::{Check, Section, Table, Verdict, megabytes, thousands};

/// The worker's peak RSS must stay at or under this many bytes.
pub const TARGET_BYTES: u64 = 64 * MB;

/// Options of the memory section.
#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    /// Size of the worker's object in MB (10^6 bytes).
    #[arg(long, default_value_t = 1000)]
    pub memory_mb: u64,
    /// Size of the baseline's object in MB: it reads the whole object into memory, so a
    /// 1 GB object needs several GB of RAM and a long time.
    #[arg(long, default_value_t = 100)]
    pub baseline_memory_mb: u64,
}

/// Options of the hidden `worker-child` command.
#[derive(Debug, Clone, Args)]
pub struct WorkerChildArgs {
    /// Bucket.
    #[arg(long)]
    pub bucket: String,
    /// Key.
    #[arg(long)]
    pub key: String,
    /// Channel.
    #[arg(long)]
    pub channel: String,
}

/// The child: builds the clients from the environment as the Lambda function does, ingests
/// one object and prints `{rows, seconds, peak_rss_kb}` read from `/proc/self/status`.
#[allow(clippy::print_stdout, reason = "the parent reads this line")]
pub async fn worker_child(args: &WorkerChildArgs) -> anyhow::Result<()> {
    let clients = ingest::Clients::from_env().await;
    let input = data::worker_input(&args.bucket, &args.key, &args.channel)?;
    let started = Instant::now();
    let output = ingest::worker::ingest_object(&clients, &input, data::far_deadline())
        .await
        .with_context(|| format!("the worker on s3://{}/{}", args.bucket, args.key))?;
    let seconds = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    let peak = data::vm_hwm_kb(&status).context("no VmHWM in /proc/self/status")?;
    println!(
        "{}",
        json!({"rows": output.rows, "done": output.done, "seconds": seconds, "peak_rss_kb": peak})
    );
    Ok(())
}

/// Runs the worker child on one object; returns (rows, seconds, peak RSS in kB).
async fn run_child(
    stack: &LocalStack,
    bucket: &str,
    key: &str,
    channel: &str,
) -> anyhow::Result<(u64, f64, u64)> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let output = tokio::process::Command::new(&exe)
        .args([
            "worker-child",
            "--bucket",
            bucket,
            "--key",
            key,
            "--channel",
            channel,
        ])
        .envs(stack.exports())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("running {} worker-child", exe.display()))?;
    if !output.status.success() {
        bail!("the worker child failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the worker child printed no result")?;
    let value: Value = serde_json::from_str(line).context("the worker child's result")?;
    ensure!(
        value.get("done").and_then(Value::as_bool) == Some(true),
        "the worker child did not finish the object"
    );
    let field = |name: &str| value.get(name).and_then(Value::as_f64).unwrap_or(0.0);
    Ok((
        field("rows") as u64,
        field("seconds"),
        field("peak_rss_kb") as u64,
    ))
}

/// Runs the worker function's release binary on one object as Lambda would (one event from
/// the bench's Runtime API); returns (rows, seconds, peak RSS in kB) and the binary's path.
async fn run_lambda_binary(
    stack: &LocalStack,
    binary: std::path::PathBuf,
    bucket: &str,
    key: &str,
    channel: &str,
) -> anyhow::Result<(u64, f64, u64)> {
    let event = json!({"bucket": bucket, "key": key, "channelName": channel}).to_string();
    let env: Vec<(String, String)> = stack
        .exports()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    tokio::task::spawn_blocking(move || {
        use crate::runtime_api::{self, Event};
        let api =
            runtime_api::start(Some(event.into_bytes())).context("starting the Runtime API")?;
        let mut child = std::process::Command::new(&binary)
            .env_clear()
            .envs(runtime_api::lambda_env(api.addr, "worker"))
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut invoked = None;
        let mut answer = None;
        let outcome = loop {
            match api
                .events
                .recv_timeout(std::time::Duration::from_secs(4 * 3600))
            {
                Ok(Event::Next { at, n: 1 }) => invoked = Some(at),
                Ok(Event::Next { .. }) => break Ok(()),
                Ok(Event::Response(body)) => answer = Some((Instant::now(), body)),
                Ok(Event::Error(body) | Event::InitError(body)) => {
                    break Err(anyhow::anyhow!("the worker function failed: {body}"));
                }
                Err(_) => break Err(anyhow::anyhow!("the worker function did not answer")),
            }
        };
        let peak = runtime_api::peak_rss_kb(child.id());
        let _ = child.kill();
        let _ = child.wait();
        outcome?;
        let (Some(invoked), Some((answered, body))) = (invoked, answer) else {
            bail!("the worker function asked for a second event without answering the first");
        };
        let output: Value = serde_json::from_str(&body).context("the worker function's output")?;
        ensure!(
            output.get("done").and_then(Value::as_bool) == Some(true),
            "the worker function did not finish the object: {body}"
        );
        let rows = output.get("rows").and_then(Value::as_u64).unwrap_or(0);
        let peak = peak.context("reading the worker function's VmHWM")?;
        Ok((rows, answered.duration_since(invoked).as_secs_f64(), peak))
    })
    .await
    .context("the worker function's run")?
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &MemoryArgs) -> anyhow::Result<Section> {
    let dir = bench.section_dir("memory")?;
    let names = WorkflowNames {
        bucket: "bench-memory".to_owned(),
        ..WorkflowNames::default()
    };
    let mut options = StackOptions::new(dir.join("stack"));
    options.channel_quota = u32::MAX;
    let stack = LocalStack::start(options, &names).await?;
    let result = measure(bench, args, &stack, &names.bucket, &dir).await;
    stack.shutdown().await;
    bench.clean(&dir);
    result
}

async fn measure(
    bench: &Bench,
    args: &MemoryArgs,
    stack: &LocalStack,
    bucket: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Section> {
    // Channels only: no pipeline, so the messages are stored once.
    for channel in ["bench_memory_rust", "bench_memory_python"] {
        stack
            .clients
            .iotanalytics
            .create_channel()
            .channel_name(channel)
            .send()
            .await
            .with_context(|| format!("creating channel {channel}"))?;
    }
    let staging = dir.join("staging");
    let mut table = Table::new(&[
        "worker", "object", "rows", "time", "peak RSS", "target", "verdict",
    ]);

    let key = format!("memory/{}mb.csv", args.memory_mb);
    crate::progress(format!(
        "memory: generating and uploading {} MB",
        args.memory_mb
    ));
    let rows = data::put_generated(
        &stack.clients.s3,
        bucket,
        &key,
        args.memory_mb * MB,
        &staging,
    )
    .await?;
    let mut checks = Vec::new();
    let target_text = if args.memory_mb >= 1000 {
        format!("≤ {} (1 GB object)", megabytes(TARGET_BYTES))
    } else {
        format!(
            "≤ {} for 1 GB; this run used {} MB",
            megabytes(TARGET_BYTES),
            args.memory_mb
        )
    };
    let verdict_for = |peak: u64| {
        if args.memory_mb >= 1000 {
            Verdict::of(peak <= TARGET_BYTES)
        } else {
            Verdict::NotRun(format!("the target is for 1 GB, not {} MB", args.memory_mb))
        }
    };
    let lambda_binary = crate::startup::find_binary(&bench.target_dir, "worker");
    if let Some(binary) = &lambda_binary {
        crate::progress(format!(
            "memory: the worker function's release binary {}, {} MB ({rows} rows)",
            binary.display(),
            args.memory_mb
        ));
        let (done_rows, seconds, peak_kb) =
            run_lambda_binary(stack, binary.clone(), bucket, &key, "bench_memory_rust").await?;
        ensure!(
            done_rows == rows,
            "the worker function acknowledged {done_rows} of {rows} rows"
        );
        let peak = peak_kb * 1024;
        let verdict = verdict_for(peak);
        table.row(vec![
            format!(
                "worker function: release binary `{}`, one event from the bench's Lambda Runtime API",
                binary
                    .strip_prefix(&bench.target_dir)
                    .map_or_else(|_| binary.display().to_string(), |p| format!("target/{}", p.display()))
            ),
            format!("{} MB", args.memory_mb),
            thousands(rows as f64),
            format!(
                "{seconds:.1} s ({} rows/s)",
                thousands(rows as f64 / seconds)
            ),
            megabytes(peak),
            target_text.clone(),
            verdict.cell(),
        ]);
        checks.push(Check {
            figure: format!(
                "worker function's peak RSS (release binary), {} MB object",
                args.memory_mb
            ),
            value: megabytes(peak),
            target: target_text.clone(),
            verdict,
        });
    }
    crate::progress(format!(
        "memory: the worker alone in a child process of the bench, {} MB ({rows} rows)",
        args.memory_mb
    ));
    let (child_rows, seconds, peak_kb) =
        run_child(stack, bucket, &key, "bench_memory_rust").await?;
    ensure!(
        child_rows == rows,
        "the worker child acknowledged {child_rows} of {rows} rows"
    );
    let peak = peak_kb * 1024;
    // The function's own binary is the figure that counts; without it, this one stands in.
    let verdict = if lambda_binary.is_some() {
        Verdict::Info
    } else {
        verdict_for(peak)
    };
    table.row(vec![
        "worker alone in a child process of the bench (`ingest-bench worker-child`)".to_owned(),
        format!("{} MB", args.memory_mb),
        thousands(rows as f64),
        format!(
            "{seconds:.1} s ({} rows/s)",
            thousands(rows as f64 / seconds)
        ),
        megabytes(peak),
        target_text.clone(),
        verdict.cell(),
    ]);
    if lambda_binary.is_none() {
        checks.push(Check {
            figure: format!(
                "worker's peak RSS (bench child process; the function's binary is not built), {} MB object",
                args.memory_mb
            ),
            value: megabytes(peak),
            target: target_text,
            verdict,
        });
    }
    let _ = stack
        .clients
        .s3
        .delete_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await;

    match &bench.baseline {
        Err(why) => table.row(vec![
            "Python baseline".to_owned(),
            "—".to_owned(),
            "—".to_owned(),
            "—".to_owned(),
            format!("not run: {why}"),
            "—".to_owned(),
            Verdict::Info.cell(),
        ]),
        Ok(baseline) => {
            let key = format!("memory/baseline-{}mb.csv", args.baseline_memory_mb);
            crate::progress(format!(
                "memory: Python baseline, {} MB",
                args.baseline_memory_mb
            ));
            let rows = data::put_generated(
                &stack.clients.s3,
                bucket,
                &key,
                args.baseline_memory_mb * MB,
                &staging,
            )
            .await?;
            let run = baseline
                .run(&stack.exports(), bucket, &key, "bench_memory_python")
                .await?;
            ensure!(
                run.rows == rows,
                "the baseline sent {} of {rows} rows",
                run.rows
            );
            table.row(vec![
                "Python baseline (its own process)".to_owned(),
                format!("{} MB", args.baseline_memory_mb),
                thousands(rows as f64),
                format!(
                    "{:.1} s ({} rows/s)",
                    run.seconds,
                    thousands(run.rows_per_second)
                ),
                megabytes(run.peak_rss_kb * 1024),
                "— (reference)".to_owned(),
                Verdict::Info.cell(),
            ]);
        }
    }
    Ok(Section {
        title: "2. Memory".to_owned(),
        intro: "Peak resident set size (`VmHWM` from `/proc/<pid>/status`, what Lambda \
                reports as Max Memory Used) of a process that runs only the worker, through \
                the local stack's endpoints. First the worker function's release binary, when \
                built, started as Lambda starts it and given one event by a Runtime API the \
                bench serves; then the bench re-executing itself (`ingest-bench \
                worker-child`), which builds its clients from the environment as the function \
                does (`ingest::Clients::from_env`) and calls `ingest::worker::ingest_object`: \
                the embedded servers do not run in it, but its binary holds their code, so its \
                resident code is larger. The baseline reports `ru_maxrss`; it holds the whole \
                object (bytes and decoded text) in memory, so it runs on a smaller object \
                (`--baseline-memory-mb`), named in the table. 1 MB = 10^6 bytes."
            .to_owned(),
        table,
        notes: Vec::new(),
        checks,
    })
}
