//! The README's first command, timed as a user runs it: the `s3-ingest` release binary's
//! `run` over the sample data set with its default flags, end to end (the local stack's
//! start, the workflow, the validation and the stack's shutdown), each on a fresh data
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Bench;
use crate::report::{Check, Table, Verdict};
use crate::startup::{find_binary, median};

/// The target for the sample run's wall time.
pub const TARGET: Duration = Duration::from_millis(600);

/// What the runs measured.
#[derive(Debug, Clone)]
pub struct SampleRuns {
    /// The binary that ran.
    pub binary: PathBuf,
    /// Wall time of each run, in order.
    pub walls: Vec<Duration>,
}

impl SampleRuns {
    /// The median wall time.
    pub fn median(&self) -> Duration {
        median(&mut self.walls.clone()).unwrap_or_default()
    }
}

/// Runs `s3-ingest run --data-dir DIR` `runs` times, each on a fresh directory under the
/// section's, and times each from spawn to exit. A run that does not exit 0 is an error that
/// carries the end of its output. `Ok(None)` when the binary is not built.
pub fn measure(bench: &Bench, runs: usize) -> anyhow::Result<Option<SampleRuns>> {
    let Some(binary) = find_binary(&bench.target_dir, "s3-ingest") else {
        return Ok(None);
    };
    let dir = bench.section_dir("sample-run")?;
    let result = (0..runs.max(1))
        .map(|i| {
            crate::progress(format!("sample run {} of {runs}: s3-ingest run", i + 1));
            // Each run starts on an idle disk, as a user's command does, not behind the
            // previous run's writeback.
            crate::settle_disk();
            time_one(&binary, &dir.join(format!("run-{i}")))
        })
        .collect::<anyhow::Result<Vec<_>>>();
    bench.clean(&dir);
    Ok(Some(SampleRuns {
        binary,
        walls: result?,
    }))
}

fn time_one(binary: &Path, data_dir: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    // The default log level, as a user who has not set RUST_LOG sees it.
    let output = Command::new(binary)
        .arg("run")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    let wall = started.elapsed();
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        anyhow::bail!(
            "{} run --data-dir {} exited with {}: {}",
            binary.display(),
            data_dir.display(),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(wall)
}

/// The table rows and the check for the runs (or why they did not run).
pub fn report(table: &mut Table, runs: Option<&SampleRuns>) -> Check {
    let figure = "`s3-ingest run`, sample data set, default flags: wall time (median)";
    let target = format!("≤ {:.1} s", TARGET.as_secs_f64());
    let Some(runs) = runs else {
        let why = "the release binary is not built (`cargo build --release`)";
        table.row(vec![
            "sample data set".to_owned(),
            figure.to_owned(),
            why.to_owned(),
            Verdict::NotRun("not built".to_owned()).cell(),
        ]);
        return Check {
            figure: figure.to_owned(),
            value: "—".to_owned(),
            target,
            verdict: Verdict::NotRun("not built".to_owned()),
        };
    };
    let median = runs.median();
    let secs = |d: &Duration| format!("{:.2} s", d.as_secs_f64());
    let all: Vec<String> = runs.walls.iter().map(secs).collect();
    let verdict = Verdict::of(median <= TARGET);
    table.row(vec![
        "sample data set".to_owned(),
        format!("{figure} (`{}`)", runs.binary.display()),
        format!(
            "{} (runs: {}; each on a fresh data directory, validation passed)",
            secs(&median),
            all.join(", ")
        ),
        verdict.cell(),
    ]);
    Check {
        figure: figure.to_owned(),
        value: secs(&median),
        target,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_compares_the_median_with_the_target() {
        let runs = SampleRuns {
            binary: PathBuf::from("s3-ingest"),
            walls: [900, 500, 550].map(Duration::from_millis).to_vec(),
        };
        let mut table = Table::new(&["objects", "figure", "measured", "verdict"]);
        let check = report(&mut table, Some(&runs));
        assert_eq!(check.value, "0.55 s");
        assert_eq!(check.verdict, Verdict::Pass);
        let slow = SampleRuns {
            walls: [700, 650, 500].map(Duration::from_millis).to_vec(),
            ..runs
        };
        assert_eq!(report(&mut table, Some(&slow)).verdict, Verdict::Fail);
        assert!(matches!(
            report(&mut table, None).verdict,
            Verdict::NotRun(_)
        ));
    }
}
