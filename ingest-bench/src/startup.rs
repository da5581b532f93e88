//! Section 5: each function's release binary, from process start to handler ready (its first
//! `GET /2018-06-01/runtime/invocation/next` to a Lambda Runtime API the bench serves), and
//! the binaries' sizes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use s3_ingest::lambda::FUNCTIONS;

use crate::Bench;
use crate::report::{Check, Section, Table, Verdict, megabytes};
use crate::runtime_api;

/// The request a Lambda runtime makes when its handler is ready for an event.
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next";

/// The target directory to look for release binaries in: `explicit`, else
/// $CARGO_TARGET_DIR, else the workspace's `target/`.
pub fn target_dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Options of the start-up section.
#[derive(Debug, Clone, Args)]
pub struct StartupArgs {
    /// Starts per function; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// `lambda/<name>/bootstrap` (cargo lambda), else `release/<name>` (cargo build --release).
pub fn find_binary(target: &Path, name: &str) -> Option<PathBuf> {
    [
        target.join("lambda").join(name).join("bootstrap"),
        target.join("release").join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(values: &mut [Duration]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    })
}

/// Starts the binary as Lambda would, with the Runtime API at a local port, and returns the
/// time from spawn to its first request for an event; the process is killed afterwards.
fn time_to_ready(binary: &Path, name: &str) -> anyhow::Result<Duration> {
    let api = runtime_api::start(None).context("starting the Runtime API")?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(runtime_api::lambda_env(api.addr, name))
        .envs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let ready = loop {
        match api.events.recv_timeout(Duration::from_secs(30)) {
            Ok(runtime_api::Event::Next { at, .. }) => break Ok(at),
            Ok(runtime_api::Event::InitError(body)) => {
                break Err(anyhow::anyhow!(
                    "{} failed to initialise: {body}",
                    binary.display()
                ));
            }
            Ok(_) => continue,
            Err(_) => {
                break Err(anyhow::anyhow!(
                    "{} asked for no event within 30 s",
                    binary.display()
                ));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(ready?.duration_since(started))
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &StartupArgs) -> anyhow::Result<Section> {
    let target = bench.target_dir.clone();
    let args = args.clone();
    tokio::task::spawn_blocking(move || measure(&target, &args))
        .await
        .context("the start-up measurement")?
}

fn measure(target: &Path, args: &StartupArgs) -> anyhow::Result<Section> {
    let mut table = Table::new(&[
        "function",
        "binary",
        "size",
        "start → handler ready (median)",
        "first start",
        "min – max",
        "target",
        "verdict",
    ]);
    let mut checks = Vec::new();
    let runs = args.runs.max(1);
    for name in FUNCTIONS {
        let Some(binary) = find_binary(target, name) else {
            let why = "not built: `cargo lambda build --release` (or `cargo build --release`)";
            table.row(vec![
                name.to_owned(),
                why.to_owned(),
                "—".to_owned(),
                "—".to_owned(),
                "—".to_owned(),
                "—".to_owned(),
                "— (figure)".to_owned(),
                Verdict::NotRun("not built".to_owned()).cell(),
            ]);
            checks.push(Check {
                figure: format!("{name}: start-up and size"),
                value: "not built".to_owned(),
                target: "— (figure)".to_owned(),
                verdict: Verdict::NotRun("not built".to_owned()),
            });
            continue;
        };
        crate::progress(format!("startup: {name}, {runs} starts"));
        let size = std::fs::metadata(&binary)
            .with_context(|| format!("reading {}", binary.display()))?
            .len();
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(time_to_ready(&binary, name)?);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let first = times[0];
        let middle = median(&mut times).unwrap_or_default();
        let shown = binary.strip_prefix(target).map_or_else(
            |_| binary.display().to_string(),
            |p| format!("target/{}", p.display()),
        );
        table.row(vec![
            name.to_owned(),
            format!("`{shown}`"),
            megabytes(size),
            format!("{:.1} ms", ms(middle)),
            format!("{:.1} ms", ms(first)),
            format!("{:.1} – {:.1} ms", ms(times[0]), ms(times[times.len() - 1])),
            "— (figure)".to_owned(),
            Verdict::Info.cell(),
        ]);
        checks.push(Check {
            figure: format!("{name}: start-up, binary size"),
            value: format!("{:.1} ms, {}", ms(middle), megabytes(size)),
            target: "— (figure)".to_owned(),
            verdict: Verdict::Info,
        });
    }
    Ok(Section {
        title: "5. Start-up".to_owned(),
        intro: format!(
            "Each function's release binary started as Lambda starts it (a clean \
             environment with `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API the bench \
             serves on loopback, the function's name, 128 MB, region and dummy credentials): \
             the time from spawn to its first `{NEXT}`, which it makes once its clients are \
             built and the handler is ready; median of {runs} starts, and the first one alone (the \
             later ones find the file in the page cache). Sizes are of the files as built."
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
    fn medians_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [ms(5), ms(1), ms(3)]), Some(ms(3)));
        assert_eq!(
            median(&mut [ms(4), ms(1), ms(2), ms(3)]),
            Some(Duration::from_micros(2500))
        );
    }

    #[test]
    fn a_missing_binary_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_binary(dir.path(), "worker"), None);
        let release = dir.path().join("release");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::write(release.join("worker"), b"").unwrap();
        assert_eq!(
            find_binary(dir.path(), "worker"),
            Some(release.join("worker"))
        );
    }
}
