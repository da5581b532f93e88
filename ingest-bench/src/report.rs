//! Markdown tables, verdicts against targets, and the results file.

use std::fmt::Write as _;
use std::path::Path;

/// How a figure compares with its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is missed.
    Fail,
    /// A figure without a target.
    Info,
    /// Not measured, and why.
    NotRun(String),
}

impl Verdict {
    /// `Pass` when `ok`, `Fail` otherwise.
    pub fn of(ok: bool) -> Self {
        if ok { Self::Pass } else { Self::Fail }
    }

    /// The table cell.
    pub fn cell(&self) -> String {
        match self {
            Self::Pass => "**pass**".to_owned(),
            Self::Fail => "**FAIL**".to_owned(),
            Self::Info => "—".to_owned(),
            Self::NotRun(why) => format!("not run: {why}"),
        }
    }
}

/// One target of the issue, checked: it goes into the summary at the top of the results.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is measured.
    pub figure: String,
    /// The measured value, as shown.
    pub value: String,
    /// The target, as shown.
    pub target: String,
    /// The comparison.
    pub verdict: Verdict,
}

/// A Markdown table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headings.
    pub headers: Vec<String>,
    /// Rows of cells, as many as headings.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these headings.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table in Markdown; `|` inside cells is escaped.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = line(&self.headers);
        out.push_str(&line(&vec!["---".to_owned(); self.headers.len()]));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// The result of one section: a table with its notes, and the targets it checked.
#[derive(Debug, Clone)]
pub struct Section {
    /// Heading, e.g. `1. Worker throughput`.
    pub title: String,
    /// What was measured and how (Markdown, before the table).
    pub intro: String,
    /// The figures.
    pub table: Table,
    /// Remarks after the table (Markdown), may be empty.
    pub notes: Vec<String>,
    /// The targets checked.
    pub checks: Vec<Check>,
}

impl Section {
    /// The section in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("## {}\n\n", self.title);
        if !self.intro.is_empty() {
            let _ = writeln!(out, "{}\n", self.intro.trim_end());
        }
        out.push_str(&self.table.markdown());
        for note in &self.notes {
            let _ = write!(out, "\n{}\n", note.trim_end());
        }
        out
    }
}

/// The summary of every check, one row each.
pub fn summary(sections: &[Section]) -> Table {
    let mut table = Table::new(&["target", "measured", "required", "verdict"]);
    for check in sections.iter().flat_map(|s| &s.checks) {
        table.row(vec![
            check.figure.clone(),
            check.value.clone(),
            check.target.clone(),
            check.verdict.cell(),
        ]);
    }
    table
}

/// The whole results file.
pub fn document(machine: &Table, command: &str, sections: &[Section]) -> String {
    let mut out = String::from("# Benchmark results\n\n");
    let _ = writeln!(
        out,
        "Produced by `{command}` (see [README.md](README.md) for what each section measures).\n"
    );
    out.push_str("## Machine\n\n");
    out.push_str(&machine.markdown());
    out.push_str("\n## Targets\n\n");
    out.push_str(&summary(sections).markdown());
    for section in sections {
        out.push('\n');
        out.push_str(&section.markdown());
    }
    out
}

/// Writes `text` to `path`, creating its directory.
pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    let negative = rounded < 0.0;
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if negative { format!("-{out}") } else { out }
}

/// Bytes as megabytes (10^6 bytes) with one decimal.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-56_570.0), "-56,570");
    }

    #[test]
    fn tables_render_as_markdown_with_escaped_pipes() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["1".to_owned(), "x|y".to_owned()]);
        assert_eq!(
            table.markdown(),
            "| a | b |\n| --- | --- |\n| 1 | x\\|y |\n"
        );
    }

    #[test]
    fn the_summary_lists_every_check() {
        let section = Section {
            title: "t".to_owned(),
            intro: String::new(),
            table: Table::new(&["x"]),
            notes: vec![],
            checks: vec![Check {
                figure: "f".to_owned(),
                value: "1".to_owned(),
                target: "≥ 1".to_owned(),
                verdict: Verdict::of(true),
            }],
        };
        let text = summary(&[section]).markdown();
        assert!(text.contains("| f | 1 | ≥ 1 | **pass** |"), "{text}");
    }
}
