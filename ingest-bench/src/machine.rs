//! The machine the figures were taken on: CPU, cores, memory, kernel, toolchain, build, date.

use std::process::Command;

use crate::report::Table;

/// The first line of a command's standard output, if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

/// The value of `field` in a `/proc` file of `name : value` lines.
pub fn proc_field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == field).then(|| value.trim().to_owned())
    })
}

/// The machine description table.
pub fn describe(python: Option<String>) -> Table {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpu = proc_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".to_owned());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let available = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = proc_field(&meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0),
        );
    let kernel = first_line("uname", &["-srm"]).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned())
    });
    let rustc = first_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned());
    let build = if cfg!(debug_assertions) {
        "debug (figures are not representative; use --release)"
    } else {
        "release"
    };
    let mut table = Table::new(&["", ""]);
    table.row(vec!["CPU".to_owned(), cpu]);
    table.row(vec![
        "cores".to_owned(),
        format!("{logical} logical ({available} available to the process)"),
    ]);
    table.row(vec!["memory".to_owned(), memory]);
    table.row(vec!["kernel".to_owned(), kernel]);
    table.row(vec!["rustc".to_owned(), rustc]);
    table.row(vec!["build".to_owned(), build.to_owned()]);
    table.row(vec![
        "baseline".to_owned(),
        python.unwrap_or_else(|| "not run".to_owned()),
    ]);
    table.row(vec![
        "date".to_owned(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    ]);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_found_by_name() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\nMemTotal:       24684084 kB\n";
        assert_eq!(proc_field(text, "model name").as_deref(), Some("AMD EPYC"));
        assert_eq!(proc_field(text, "MemTotal").as_deref(), Some("24684084 kB"));
        assert_eq!(proc_field(text, "cpu MHz"), None);
    }
}
