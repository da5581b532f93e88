//! Helpers shared by the end-to-end tests: a local stack in a temporary directory and
//! dataset queries through the real IoT Analytics client.

use std::collections::BTreeMap;
use std::time::Duration;

use ingest::validator::{CheckValidation, Expectation, StartValidation};
use s3_ingest::run::RunArgs;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames};

/// A stack with its data in a temporary directory that lives as long as it does.
pub struct TestStack {
    /// The stack.
    pub stack: LocalStack,
    /// Arguments of a sample run against it.
    pub args: RunArgs,
    _dir: tempfile::TempDir,
}

/// Run arguments for a sample run in `dir`: the defaults, with delays scaled down for
/// tests and a channel quota that does not hold them back.
pub fn sample_args(dir: &std::path::Path) -> RunArgs {
    let mut args = RunArgs::with_defaults(dir);
    args.channel_quota = local_quota();
    args.time_scale = 0.05;
    args
}

fn local_quota() -> u32 {
    100_000
}

impl TestStack {
    /// Starts a stack for `args` (made by `customize` from the sample arguments).
    pub async fn start(customize: impl FnOnce(&mut RunArgs)) -> anyhow::Result<Self> {
        Self::start_with(customize, |_| {}).await
    }

    /// [`TestStack::start`], with the stack's options (faults, timeouts) adjusted by `options`.
    pub async fn start_with(
        customize: impl FnOnce(&mut RunArgs),
        options: impl FnOnce(&mut StackOptions),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut args = sample_args(dir.path());
        customize(&mut args);
        let mut stack_options = args.stack_options();
        options(&mut stack_options);
        let stack = LocalStack::start(stack_options, &args.names()).await?;
        Ok(Self {
            stack,
            args,
            _dir: dir,
        })
    }

    /// Rows stored in the run's datastore, and distinct `rowid`s among them.
    pub async fn stored_and_distinct(&self) -> anyhow::Result<(u64, u64)> {
        let row = self
            .first_row(
                &format!("{}_counts", self.args.datastore),
                &format!(
                    "SELECT count(*) AS stored, count(DISTINCT rowid) AS distinct_rows FROM {}",
                    self.args.datastore
                ),
            )
            .await?;
        Ok((row["stored"].parse()?, row["distinct_rows"].parse()?))
    }

    /// Starts an execution with `input` through the Step Functions API and waits for it
    /// (and any execution it continues as); returns the last one's status and output.
    pub async fn execute(
        &self,
        input: &serde_json::Value,
    ) -> anyhow::Result<(String, serde_json::Value)> {
        let sfn = self.stack.sfn_client().await;
        let mut execution = sfn
            .start_execution()
            .state_machine_arn(&self.stack.state_machine_arn)
            .input(input.to_string())
            .send()
            .await?
            .execution_arn()
            .to_owned();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let described = sfn
                .describe_execution()
                .execution_arn(&execution)
                .send()
                .await?;
            let status = described.status().as_str().to_owned();
            if status == "RUNNING" {
                continue;
            }
            let output: serde_json::Value = match described.output() {
                Some(text) => serde_json::from_str(text)?,
                None => serde_json::json!({"error": described.error(), "cause": described.cause()}),
            };
            match output
                .pointer("/continuation/ExecutionArn")
                .and_then(|v| v.as_str())
            {
                Some(next) if status == "SUCCEEDED" => execution = next.to_owned(),
                _ => return Ok((status, output)),
            }
        }
    }

    /// Each failed Map Run item of `execution`: its child execution's name, error and cause,
    /// as the console's Map Run page shows them.
    pub async fn failed_items(&self, execution: &str) -> Vec<String> {
        let sfn = self.stack.sfn_client().await;
        let mut out = Vec::new();
        for run in self.stack.stepfunctions.handle().map_runs(execution) {
            let Ok(children) = sfn
                .list_executions()
                .map_run_arn(&run.map_run_arn)
                .send()
                .await
            else {
                continue;
            };
            for child in children.executions() {
                if child.status().as_str() == "SUCCEEDED" {
                    continue;
                }
                if let Ok(d) = sfn
                    .describe_execution()
                    .execution_arn(child.execution_arn())
                    .send()
                    .await
                {
                    out.push(format!(
                        "{} {}: {} {}",
                        child.name(),
                        d.status().as_str(),
                        d.error().unwrap_or_default(),
                        d.cause().unwrap_or_default()
                    ));
                }
            }
        }
        out
    }

    /// The names of this stack's run.
    pub fn names(&self) -> WorkflowNames {
        self.args.names()
    }

    /// Runs `sql` as dataset `dataset` and returns the first result row ([`first_row`]).
    pub async fn first_row(
        &self,
        dataset: &str,
        sql: &str,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        first_row(&self.stack, &self.args.datastore, dataset, sql).await
    }
}

/// Runs `sql` over `datastore` as dataset `dataset` and returns the first result row,
/// through the same validator code the workflow uses, over the real client.
pub async fn first_row(
    stack: &LocalStack,
    datastore: &str,
    dataset: &str,
    sql: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let client = &stack.clients.iotanalytics;
    let started = ingest::validator::start_content(
        client,
        &StartValidation {
            dataset_name: dataset.to_owned(),
            datastore_name: datastore.to_owned(),
            sql: Some(sql.to_owned()),
            expected: Some(BTreeMap::<String, Expectation>::new()),
            totals: Default::default(),
            results: Vec::new(),
            row_identity: false,
            per_object: None,
            wait_seconds: 0,
        },
    )
    .await?;
    for _ in 0..600 {
        let checked = ingest::validator::check_content(
            client,
            &CheckValidation {
                dataset_name: dataset.to_owned(),
                version_id: started.version_id.clone(),
                expected: None,
                per_object: None,
                progress: None,
            },
        )
        .await?;
        if checked.state != "CREATING" {
            return Ok(checked.actual);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("dataset {dataset} still CREATING after 30 s")
}
