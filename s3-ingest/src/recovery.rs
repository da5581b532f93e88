//! Finishing what an earlier `run` on the same data directory left: after a crash its
//! execution is running again (the embedded Step Functions resumes it at start), and its
//! ledger claims still hold their leases.
//!
//! A `run` adopts such an execution when it ingests the same thing (same settings): it
//! follows it to its end instead of starting another, and the execution's workers resume
//! their own claims from their checkpoints at once. Any other execution still running is
//! stopped, and every claim not held by the adopted run is released, so nothing waits out a
//! lease and nothing wakes up later to ingest again.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::Value;

use crate::run::RunArgs;
use crate::stack::LocalStack;

/// The error a superseded execution is stopped with.
pub const SUPERSEDED: &str = "s3-ingest.Superseded";

/// The error an interrupted execution is stopped with.
pub const INTERRUPTED: &str = "s3-ingest.Interrupted";

/// An execution a run follows, with the run it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// Execution ARN.
    pub execution_arn: String,
    /// The run's id (its first execution's name), which owns its ledger claims.
    pub run_id: String,
}

/// What a run found and did before starting.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The earlier run's execution this run follows instead of starting one.
    pub adopted: Option<Adopted>,
    /// Executions stopped because they ingest something else.
    pub superseded: Vec<String>,
    /// Keys whose claims were released (their runs are gone).
    pub released: Vec<String>,
}

/// Holds the data directory for one `run` at a time: two runs over the same endpoints' files
/// would each believe the other's claims dead. The lock ends with the process, however it
/// ends.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("run.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another s3-ingest run is using {}; wait for it or stop it first",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The run id of an execution: `cursor.runId` of its input (continued executions), or its
/// name.
pub fn run_id_of(execution_arn: &str, input: &Value) -> String {
    input
        .pointer("/cursor/runId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            execution_arn
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
}

/// Whether an execution's input asks for the same work as `ours`: every setting this run
/// gives has the same value there (a continued execution's input holds them all, merged
/// with the defaults).
pub fn same_work(ours: &Value, theirs: &Value) -> bool {
    ours.as_object().is_some_and(|ours| {
        ours.iter()
            .all(|(field, value)| theirs.get(field) == Some(value))
    })
}

/// Adopts, stops and releases as the module describes; `input` is this run's input.
pub async fn recover(
    stack: &LocalStack,
    sfn: &aws_sdk_sfn::Client,
    args: &RunArgs,
    input: &Value,
) -> anyhow::Result<Recovery> {
    let mut recovery = Recovery::default();
    let running = sfn
        .list_executions()
        .state_machine_arn(&stack.state_machine_arn)
        .status_filter(ExecutionStatus::Running)
        .send()
        .await
        .context("ListExecutions")?;
    // Newest first: the latest matching execution is the one a continued run is in.
    for execution in running.executions() {
        let arn = execution.execution_arn();
        let described = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .context("DescribeExecution")?;
        let theirs: Value = described
            .input()
            .map(serde_json::from_str)
            .transpose()
            .context("reading an execution's input")?
            .unwrap_or(Value::Null);
        if recovery.adopted.is_none() && same_work(input, &theirs) {
            let run_id = run_id_of(arn, &theirs);
            tracing::warn!(execution = %arn, run = %run_id, "an earlier run did not finish; resuming its execution");
            recovery.adopted = Some(Adopted {
                execution_arn: arn.to_owned(),
                run_id,
            });
            continue;
        }
        tracing::warn!(execution = %arn, "stopping an earlier run's execution that ingests something else");
        sfn.stop_execution()
            .execution_arn(arn)
            .error(SUPERSEDED)
            .cause("a later s3-ingest run on the same data directory took over")
            .send()
            .await
            .context("StopExecution")?;
        recovery.superseded.push(arn.to_owned());
    }
    // Only this process runs executions on this data directory (see `lock_data_dir`), so a
    // claim held by any other run belongs to a run that is gone.
    let keep = recovery.adopted.as_ref().map(|a| a.run_id.as_str());
    recovery.released = release_claims(stack, args, |run| Some(run) != keep).await?;
    if !recovery.released.is_empty() {
        tracing::warn!(
            objects = recovery.released.len(),
            "claims of runs that did not finish released; this run resumes them from their checkpoints"
        );
    }
    Ok(recovery)
}

/// Releases the in-progress claims under the run's bucket and prefix whose run `release`
/// picks; returns their keys.
pub async fn release_claims(
    stack: &LocalStack,
    args: &RunArgs,
    release: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<String>> {
    let location = ingest::ledger::LedgerLocation {
        bucket: args.ledger_bucket.clone(),
        prefix: ingest::ledger::DEFAULT_LEDGER_PREFIX.to_owned(),
    };
    let ledger = ingest::ledger::Ledger::new(&stack.clients.s3, &location);
    let mut runs: Vec<String> = ledger
        .entries(&args.bucket, &args.prefix)
        .await
        .context("reading the ledger")?
        .into_iter()
        .filter(|s| s.entry.state == ingest::ledger::EntryState::InProgress)
        .map(|s| s.entry.run_id)
        .filter(|run| release(run))
        .collect();
    runs.sort();
    runs.dedup();
    let mut released = Vec::new();
    for run in runs {
        released.extend(
            ledger
                .release(&run, &args.bucket, &args.prefix)
                .await
                .with_context(|| format!("releasing the claims of run {run}"))?,
        );
    }
    Ok(released)
}

/// Stops `execution_arn` after an interrupt and releases its run's claims, so the next run
/// resumes them at once.
pub async fn interrupt(
    stack: &LocalStack,
    sfn: &aws_sdk_sfn::Client,
    args: &RunArgs,
    execution_arn: &str,
    run_id: &str,
) -> anyhow::Result<Vec<String>> {
    sfn.stop_execution()
        .execution_arn(execution_arn)
        .error(INTERRUPTED)
        .cause("s3-ingest run was interrupted")
        .send()
        .await
        .context("StopExecution")?;
    release_claims(stack, args, |run| run == run_id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_continued_execution_does_the_same_work_as_the_input_that_started_it() {
        let ours = json!({"bucket": "b", "prefix": "p/", "rate": 0});
        let continued = json!({"bucket": "b", "prefix": "p/", "rate": 0, "suffix": ".csv",
            "cursor": {"runId": "first"}});
        assert!(same_work(&ours, &continued));
        assert!(!same_work(
            &ours,
            &json!({"bucket": "b", "prefix": "q/", "rate": 0})
        ));
        assert!(!same_work(&ours, &json!({"bucket": "b", "prefix": "p/"})));
    }

    #[test]
    fn the_run_id_is_the_cursor_s_or_else_the_execution_name() {
        let arn = "arn:aws:states:us-east-1:1:execution:ingest:abc";
        assert_eq!(run_id_of(arn, &json!({})), "abc");
        assert_eq!(
            run_id_of(arn, &json!({"cursor": {"runId": "first"}})),
            "first"
        );
    }

    #[test]
    fn a_second_run_on_a_locked_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        let error = lock_data_dir(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("another s3-ingest run"),
            "{error}"
        );
        drop(held);
        lock_data_dir(dir.path()).unwrap();
    }
}
