//! What a scenario found: figures, and checks that pass or fail the run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};

/// The opening of a file under docs/ that a command writes and the README
/// shows: its title, which command writes it, and when it ran.
pub fn kept_file_header(out: &mut String, command: &str, script: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# `{command}`: the latest run\n");
    let _ = writeln!(
        out,
        "Written by `{command}` (`{script}`); rerun it to refresh this file.\n"
    );
    let _ = writeln!(
        out,
        "- date: {}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
}

pub struct Report {
    pub scenario: &'static str,
    pub started_at: chrono::DateTime<chrono::Utc>,
    figures: Map<String, Value>,
    checks: Vec<Value>,
    lines: Vec<String>,
    failed: usize,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            started_at: chrono::Utc::now(),
            figures: Map::new(),
            checks: Vec::new(),
            lines: Vec::new(),
            failed: 0,
        }
    }

    /// A figure for the JSON file.
    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    /// A line of the printed summary.
    pub fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// A correctness check: a failed one fails the run (exit status 1).
    pub fn check(&mut self, name: &str, expected: impl ToString, actual: impl ToString) {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        let ok = expected == actual;
        if !ok {
            self.failed += 1;
        }
        self.lines.push(format!(
            "  [{}] {name}: expected {expected}, got {actual}",
            if ok { "ok" } else { "FAIL" }
        ));
        self.checks
            .push(json!({ "name": name, "expected": expected, "actual": actual, "ok": ok }));
    }

    /// The summary's lines, checks included.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn passed(&self) -> bool {
        self.failed == 0
    }

    pub fn print(&self) {
        println!("== {} ==", self.scenario);
        for line in &self.lines {
            println!("{line}");
        }
        println!(
            "  result: {}",
            if self.passed() {
                "PASS".to_owned()
            } else {
                format!("FAIL ({} checks failed)", self.failed)
            }
        );
    }

    /// Writes the summary as a markdown section to `path` (what the README
    /// shows of `make loadtest`).
    pub fn write_summary(&self, path: &Path, title: &str) -> anyhow::Result<()> {
        let mut text = format!(
            "## {title}\n\n{} ({}):\n\n```text\n",
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            if self.passed() { "pass" } else { "FAIL" }
        );
        for line in &self.lines {
            text.push_str(line.trim_start());
            text.push('\n');
        }
        text.push_str("```\n");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes `<dir>/<scenario>-<time>.json` and returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!(
            "{}-{}.json",
            self.scenario,
            self.started_at.format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let document = json!({
            "scenario": self.scenario,
            "startedAt": self.started_at.to_rfc3339(),
            "passed": self.passed(),
            "figures": self.figures,
            "checks": self.checks,
        });
        let text = serde_json::to_string_pretty(&document).context("serializing the report")?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}
