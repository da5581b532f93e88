//! The summary `run` prints at its end, and its exit status.

use std::fmt::Write as _;

use serde_json::Value;

use crate::run::RunReport;

/// What `run` says in its exit code. `--help` and the README list the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every object ingested, validation passed, nothing set aside.
    Passed,
    /// 1: the run failed, or validation did not pass (rows missing, objects still held).
    Failed,
    /// 3: validation passed, but objects or rows under the source prefix are set aside (the
    /// summary and the reports name them).
    SetAside,
    /// 4: the source has no matching objects, not even ones ingested before
    /// (`--allow-empty` makes this 0).
    EmptySource,
    /// 130: interrupted (Ctrl-C or SIGTERM); the execution was stopped.
    Interrupted,
}

/// The exit codes, as `run --help` prints them.
pub const EXIT_CODES: &str = "Exit codes:
  0    every object ingested and validated, nothing set aside
  1    the run failed, or validation did not pass (a row missing, an object still held)
  2    invalid command line
  3    validated, but objects or rows are set aside (named in the summary and the reports)
  4    the source has no matching objects (0 with --allow-empty)
  130  interrupted (Ctrl-C or SIGTERM): the execution was stopped; run again to finish";

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Passed => 0,
            Self::Failed => 1,
            Self::SetAside => 3,
            Self::EmptySource => 4,
            Self::Interrupted => 130,
        }
    }

    /// The status a report ends with.
    pub fn of(report: &RunReport, allow_empty: bool) -> Self {
        let total = |field: &str| {
            report
                .output
                .as_ref()
                .and_then(|o| o.pointer(&format!("/totals/{field}")))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        if report.interrupted {
            Self::Interrupted
        } else if !report.passed() {
            Self::Failed
        } else if total("objects") + total("skipped") == 0 && !allow_empty {
            Self::EmptySource
        } else if report.objects_set_aside > 0
            || report.rows_set_aside > 0
            || total("setAside") > 0
            || total("badRows") > 0
        {
            Self::SetAside
        } else {
            Self::Passed
        }
    }

    /// One line saying why the code is not 0.
    pub fn explain(self) -> String {
        let why = match self {
            Self::Passed => "everything ingested and validated",
            Self::Failed => "the run did not pass validation",
            Self::SetAside => "validated, but objects or rows are set aside",
            Self::EmptySource => "no objects matched the source (use --allow-empty to accept)",
            Self::Interrupted => "interrupted",
        };
        format!("exit code {}: {why}", self.code())
    }
}

/// The summary as one JSON document (`run --output json`): the same figures as the text,
/// every set-aside entry, and the exit code.
pub fn summary_json(report: &RunReport, status: ExitStatus) -> Value {
    let failure = report
        .failure
        .as_ref()
        .map(|(error, cause)| serde_json::json!({"error": error, "cause": cause}));
    serde_json::json!({
        "status": report.status,
        "exitCode": status.code(),
        "explanation": status.explain(),
        "executions": report.executions,
        "rows": report.rows,
        "objects": report.objects,
        "retries": report.retries,
        "wallSeconds": report.elapsed.as_secs_f64(),
        "objectsSetAside": report.objects_set_aside,
        "rowsSetAside": report.rows_set_aside,
        "interrupted": report.interrupted,
        "reports": report.reports,
        "setAside": report.set_aside.iter().map(|s| serde_json::json!({
            "key": s.key, "line": s.line, "reason": s.reason, "object": s.object, "report": s.report,
        })).collect::<Vec<_>>(),
        "failure": failure,
        "failedItems": report.failed_items.iter().map(crate::output::failed_item).collect::<Vec<_>>(),
        "totals": report.output.as_ref().and_then(|o| o.get("totals")),
        "validation": report.output.as_ref().and_then(|o| o.get("validation")),
    })
}

/// Set-aside entries the summary names one by one; the reports hold every one.
const SUMMARY_SET_ASIDE: usize = 20;

/// The summary table printed at the end of `run`.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let seconds = report.elapsed.as_secs_f64();
    let totals = report.output.as_ref().and_then(|o| o.get("totals"));
    let total = |field: &str| {
        totals
            .and_then(|t| t.get(field))
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_owned(), |n| n.to_string())
    };
    let _ = writeln!(out, "Run summary");
    let _ = writeln!(out, "  status            {}", report.status);
    let _ = writeln!(out, "  executions        {}", report.executions.len());
    let _ = writeln!(out, "  pages             {}", total("pages"));
    let _ = writeln!(out, "  objects           {}", report.objects);
    let _ = writeln!(out, "  rows ingested     {}", report.rows);
    let _ = writeln!(out, "  rows set aside    {}", total("badRows"));
    let _ = writeln!(out, "  objects set aside {}", total("setAside"));
    let _ = writeln!(
        out,
        "  already ingested  {} objects, {} rows (skipped, by the ledger)",
        total("skipped"),
        total("skippedRows")
    );
    let _ = writeln!(out, "  re-sends          {}", report.retries);
    let validated = report
        .output
        .as_ref()
        .and_then(|o| o.pointer("/validation/actual/duplicates"))
        .and_then(Value::as_str);
    if let Some(duplicates) = validated.or(report.failed_duplicates().as_deref()) {
        let _ = writeln!(
            out,
            "  duplicates        {duplicates} rows stored twice (at most {} per crash or interrupt)",
            report.duplicate_bound
        );
    }
    if let Some(adopted) = &report.recovery.adopted {
        let _ = writeln!(
            out,
            "  resumed           run {} (it did not finish): {}",
            adopted.run_id, adopted.execution_arn
        );
    }
    if !report.recovery.superseded.is_empty() {
        let _ = writeln!(
            out,
            "  stopped           {} earlier executions that ingest something else",
            report.recovery.superseded.len()
        );
    }
    if !report.recovery.released.is_empty() {
        let _ = writeln!(
            out,
            "  taken over        {} objects claimed by runs that did not finish",
            report.recovery.released.len()
        );
    }
    let _ = writeln!(
        out,
        "  wall time         {seconds:.2} s ({:.0} rows/s)",
        report.rows as f64 / seconds.max(0.001)
    );
    if !report.set_aside.is_empty() {
        let _ = writeln!(out, "Set aside (reports in {}):", report.reports);
        for entry in report.set_aside.iter().take(SUMMARY_SET_ASIDE) {
            let what = if entry.object {
                "object stopped"
            } else {
                "row"
            };
            let _ = writeln!(
                out,
                "  {} line {}: {what}: {}",
                entry.key, entry.line, entry.reason
            );
        }
        if report.set_aside.len() > SUMMARY_SET_ASIDE {
            let _ = writeln!(
                out,
                "  ... and {} more in the reports",
                report.set_aside.len() - SUMMARY_SET_ASIDE
            );
        }
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "Interrupted: the execution was stopped and its objects released; run again with the same --data-dir to finish."
        );
        return out;
    }
    if let Some((error, cause)) = &report.failure {
        let _ = writeln!(out, "Failed: {error}");
        let _ = writeln!(out, "  {cause}");
        for item in &report.failed_items {
            let _ = writeln!(
                out,
                "  failed item {}: {}: {}",
                item.key.as_deref().unwrap_or(&item.execution_arn),
                item.error,
                item.cause
            );
        }
        let last = report.executions.last().map_or("", String::as_str);
        let deciding = report
            .failed_items
            .first()
            .map_or(error.as_str(), |i| i.error.as_str());
        let advice = match error.as_str() {
            // Redriving re-runs the check on the same data: it cannot bring rows back.
            "ValidationFailed" if cause.contains("rows missing") => {
                "  Rows the ledger records as sent are not in the datastore: a redrive cannot bring them back.".to_owned()
            }
            "ValidationFailed" if cause.contains("still held") => {
                "  Run again with the same --data-dir: the objects are taken over and finished.".to_owned()
            }
            "ValidationFailed" => "  The datastore does not hold what was expected.".to_owned(),
            _ => format!("  {}", crate::control::advice(deciding, last)),
        };
        let _ = writeln!(out, "{advice}");
        return out;
    }
    if let Some(validation) = report.output.as_ref().and_then(|o| o.get("validation")) {
        let field = |name: &str| validation.get(name).and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(
            out,
            "Validation: dataset {} version {}",
            field("dataset"),
            field("versionId")
        );
        let _ = writeln!(out, "  {}", field("sql"));
        let empty = serde_json::Map::new();
        let expected = validation
            .get("expected")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let actual = validation
            .get("actual")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (column, want) in expected {
            let got = actual.get(column).and_then(Value::as_str).unwrap_or("-");
            let want = want.to_string();
            let _ = writeln!(out, "  {column:<20} expected {want:<16} actual {got}");
        }
        for (column, got) in actual.iter().filter(|(c, _)| !expected.contains_key(*c)) {
            let _ = writeln!(out, "  {column:<20} actual {}", got.as_str().unwrap_or("-"));
        }
        let _ = writeln!(
            out,
            "  {}",
            if report.passed() {
                "PASSED"
            } else {
                "NOT PASSED"
            }
        );
    }
    out
}
