//! What the local Step Functions recorded: how long the Distributed Map states ran, and how
//! many history events each execution has.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use s3_ingest::stack::LocalStack;

/// How often the executions entered states of this kind (`Map`, `Task`, ...), named `name`
/// if given, and the total time they spent in them (from each `<Kind>StateEntered` to the
/// next `<Kind>StateExited`).
pub fn time_in(
    stack: &LocalStack,
    executions: &[String],
    kind: &str,
    name: Option<&str>,
) -> anyhow::Result<(u64, Duration)> {
    let handle = stack.stepfunctions.handle();
    let (entered_kind, exited_kind) = (format!("{kind}StateEntered"), format!("{kind}StateExited"));
    let mut count = 0;
    let mut total = Duration::ZERO;
    for arn in executions {
        let events = handle
            .history(arn)
            .with_context(|| format!("history of {arn}"))?;
        let mut entered = None;
        for event in &events {
            let named = name.is_none_or(|wanted| {
                event
                    .details
                    .as_ref()
                    .and_then(|(_, details)| details.get("name"))
                    .and_then(|n| n.as_str())
                    == Some(wanted)
            });
            if !named {
                continue;
            }
            if event.kind == entered_kind {
                entered = Some(event.timestamp);
            } else if event.kind == exited_kind
                && let Some(start) = entered.take()
            {
                count += 1;
                total += (event.timestamp - start).to_std().unwrap_or_default();
            }
        }
    }
    Ok((count, total))
}

/// The largest history among the state machine's executions (Map Run children excluded),
/// as DescribeExecution would count it; with the number of executions.
pub fn top_level_events(stack: &LocalStack) -> (usize, usize) {
    let executions = stack
        .stepfunctions
        .handle()
        .list_executions(&stack.state_machine_arn);
    let max = executions.iter().map(|e| e.event_count).max().unwrap_or(0);
    (executions.len(), max)
}

/// Every execution's history as the local Step Functions stored it (one JSON event per line
/// in `executions/*.events.jsonl` under its data directory; complete once the stack is shut
/// down), Map Run children included: (histories, events in the largest).
pub fn stored_histories(stepfunctions_dir: &Path) -> anyhow::Result<(usize, u64)> {
    let dir = stepfunctions_dir.join("executions");
    let mut count = 0;
    let mut max = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".events.jsonl"))
        {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let events = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            count += 1;
            max = max.max(events);
        }
    }
    Ok((count, max))
}
