//! Section 7: what ingesting costs on AWS, before (every object alone in a Standard child)
//! and after (small objects in batches through Express children), from local runs' counts
//! and AWS's published prices.

use clap::Args;

use crate::Bench;
use crate::cost_model::{self, PerObject, dollars};
use crate::prices;
use crate::report::{Check, Section, Table, Verdict, thousands};
use crate::small_objects::{self, Objects, RunCounts};

/// The small objects must be at least this many times cheaper after than before.
pub const TARGET_RATIO: f64 = 20.0;

/// Options of the cost section.
#[derive(Debug, Clone, Args)]
pub struct CostArgs {
    /// Objects of 20 KB measured before and after (priced for 100,000).
    #[arg(long, default_value_t = 10_000)]
    pub cost_small_objects: u64,
    /// Large objects measured before and after (priced for 1,000).
    #[arg(long, default_value_t = 2)]
    pub cost_large_objects: u64,
    /// Size of each large object, in MB.
    #[arg(long, default_value_t = 100)]
    pub cost_large_mb: u64,
    /// The Distributed Maps' MaxConcurrency in these runs.
    #[arg(long, default_value_t = 10)]
    pub cost_concurrency: u32,
}

/// One workload priced before and after.
struct Priced {
    label: String,
    priced_objects: f64,
    before: (RunCounts, PerObject),
    after: (RunCounts, PerObject),
}

async fn before_and_after(
    bench: &Bench,
    name: &str,
    objects: Objects,
    concurrency: u32,
) -> anyhow::Result<((RunCounts, PerObject), (RunCounts, PerObject))> {
    let before = small_objects::measure(
        bench,
        &format!("{name}-before"),
        objects,
        Some(0),
        concurrency,
    )
    .await?;
    let after =
        small_objects::measure(bench, &format!("{name}-after"), objects, None, concurrency).await?;
    let (b, a) = (before.per_object(), after.per_object());
    Ok(((before, b), (after, a)))
}

/// The per-line table of one workload.
fn lines_table(priced: &Priced) -> Table {
    let mut table = Table::new(&[
        "cost line",
        "per object before",
        "per object after",
        &format!("before, {} objects", thousands(priced.priced_objects)),
        &format!("after, {} objects", thousands(priced.priced_objects)),
    ]);
    let before = cost_model::lines(&priced.before.1, priced.priced_objects);
    let after = cost_model::lines(&priced.after.1, priced.priced_objects);
    for (b, a) in before.iter().zip(&after) {
        let per = |q: f64| format!("{:.4} {}", q / priced.priced_objects, b.price.unit);
        let item = if b.service {
            format!("IoT Analytics service → {}", b.price.item)
        } else {
            b.price.item.to_owned()
        };
        table.row(vec![
            item,
            per(b.quantity),
            per(a.quantity),
            dollars(b.dollars),
            dollars(a.dollars),
        ]);
    }
    table.row(vec![
        "**workflow total** (without the service)".to_owned(),
        String::new(),
        String::new(),
        format!("**{}**", dollars(cost_model::workflow_total(&before))),
        format!("**{}**", dollars(cost_model::workflow_total(&after))),
    ]);
    table.row(vec![
        "**total with the service**".to_owned(),
        String::new(),
        String::new(),
        format!("**{}**", dollars(cost_model::total(&before))),
        format!("**{}**", dollars(cost_model::total(&after))),
    ]);
    table
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &CostArgs) -> anyhow::Result<Section> {
    let small = Objects::Generated {
        count: args.cost_small_objects,
        bytes: 20_000,
    };
    let (before, after) =
        before_and_after(bench, "cost-small", small, args.cost_concurrency).await?;
    let small = Priced {
        label: "100,000 objects of 20 KB".to_owned(),
        priced_objects: 100_000.0,
        before,
        after,
    };
    let large = Objects::Generated {
        count: args.cost_large_objects,
        bytes: args.cost_large_mb * crate::data::MB,
    };
    let (before, after) =
        before_and_after(bench, "cost-large", large, args.cost_concurrency).await?;
    let large = Priced {
        label: format!("1,000 objects of {} MB", args.cost_large_mb),
        priced_objects: 1_000.0,
        before,
        after,
    };

    let mut table = Table::new(&[
        "workload",
        "measured on",
        "workflow: before (smallObjectBytes 0)",
        "workflow: after (defaults)",
        "workflow: before ÷ after",
        "with the service: before → after (÷)",
        "verdict",
    ]);
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    for (priced, measured_on, target) in [
        (&small, args.cost_small_objects, true),
        (&large, args.cost_large_objects, false),
    ] {
        let before_lines = cost_model::lines(&priced.before.1, priced.priced_objects);
        let after_lines = cost_model::lines(&priced.after.1, priced.priced_objects);
        let b = cost_model::workflow_total(&before_lines);
        let a = cost_model::workflow_total(&after_lines);
        let ratio = cost_model::ratio(b, a);
        let (bs, as_) = (
            cost_model::total(&before_lines),
            cost_model::total(&after_lines),
        );
        let ok = priced.before.0.succeeded() && priced.after.0.succeeded();
        let verdict = if target {
            Verdict::of(ok && ratio >= TARGET_RATIO)
        } else {
            Verdict::Info
        };
        table.row(vec![
            priced.label.clone(),
            format!(
                "{} objects each way ({}, {})",
                thousands(measured_on as f64),
                priced.before.0.status,
                priced.after.0.status
            ),
            dollars(b),
            dollars(a),
            format!("{ratio:.1}×"),
            format!(
                "{} → {} ({:.1}×)",
                dollars(bs),
                dollars(as_),
                cost_model::ratio(bs, as_)
            ),
            verdict.cell(),
        ]);
        if target {
            checks.push(Check {
                figure: "workflow cost of 100,000 objects of 20 KB, before ÷ after".to_owned(),
                value: format!("{ratio:.1}× ({} → {})", dollars(b), dollars(a)),
                target: format!("≥ {TARGET_RATIO}×"),
                verdict,
            });
        }
        let mut counts = Table::new(&["run", "objects", "figure", "measured", "verdict"]);
        for (when, run) in [("before", &priced.before.0), ("after", &priced.after.0)] {
            let mut t = Table::new(&["objects", "figure", "measured", "verdict"]);
            small_objects::rows(&mut t, when, run);
            for row in t.rows {
                let mut cells = vec![row[0].clone(), thousands(run.objects as f64)];
                cells.extend(row.into_iter().skip(1));
                counts.row(cells);
            }
        }
        notes.push(format!(
            "### {}: cost lines\n\n{}\n### {}: the measured runs\n\n{}",
            priced.label,
            lines_table(priced).markdown(),
            priced.label,
            counts.markdown()
        ));
    }
    notes.push(format!(
        "### Prices\n\nAWS's published on-demand prices, us-east-1, free tiers left out \
         (`ingest-bench/src/prices.rs`):\n\n{}",
        prices::table().markdown()
    ));
    Ok(Section {
        title: "7. Cost on AWS".to_owned(),
        intro: format!(
            "Each workload runs twice on the same data through the whole local workflow \
             (as in section 6): before = execution input `\"smallObjectBytes\": 0` (every \
             object alone in a Standard Map Run child), after = the defaults (objects up to \
             1 MiB in batches of up to 50 through Express children; larger ones alone in \
             Standard children). Each run's counts are divided by its objects and scaled \
             linearly: the 20 KB figures are measured on {} objects and priced for 100,000, \
             the {} MB figures on {} objects and priced for 1,000. Lambda durations on AWS \
             are not the local ones: the local durations (the bench's process, this machine) \
             are used as the estimate, billed per started millisecond at the template's \
             memory (launcher and validator 256 MB, worker 512 MB, arm64). An Express child \
             is billed for its batch worker's duration, rounded up to 100 ms, at 64 MB. The \
             IoT Analytics-compatible service is a Lambda function URL writing to S3: its \
             invocations (one per BatchPutMessage; the run's few control requests left out) \
             are priced as Lambda requests and its S3 requests as S3 requests; its duration \
             is not measured and not priced. The service's lines are the same before and \
             after (the same rows in the same batches) and stand for what IoT Analytics \
             itself charged per message, so the target (≥ 20× cheaper) is checked on the \
             workflow's own lines: Step Functions, the workflow's functions and their S3 \
             requests; the total with the service is shown beside it. Storage, data \
             transfer, Athena and CloudWatch Logs are left out.",
            thousands(args.cost_small_objects as f64),
            args.cost_large_mb,
            args.cost_large_objects
        ),
        table,
        notes,
        checks,
    })
}
