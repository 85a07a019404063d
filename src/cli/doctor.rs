//! `samgate doctor`: prints one line per check (or a JSON array) and fails when any check fails.

use std::time::Duration;

use crate::config::Config;
use crate::doctor::{self, Options, Report};

/// Runs the checks against the environment's configuration, read as `serve` reads it.
pub async fn doctor(timeout_secs: u64, json: bool) -> anyhow::Result<()> {
    let options = Options {
        timeout: Duration::from_secs(timeout_secs.max(1)),
    };
    let report = doctor::examine(Config::from_env(), options).await;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    match report.failures() {
        0 => Ok(()),
        failures => {
            anyhow::bail!("doctor: {failures} check(s) failed; each FAIL line says the fix")
        }
    }
}

/// `OK   <what>: <detail>` or `FAIL <what>: <detail>; fix: <who does what>`, one line each.
fn render(report: &Report) -> String {
    let mut out = String::new();
    for finding in &report.findings {
        out.push_str(&format!(
            "{:<4} {}: {}",
            finding.status.label(),
            finding.check.label(),
            finding.detail
        ));
        if let Some(fix) = &finding.fix {
            out.push_str(&format!("; fix: {fix}"));
        }
        out.push('\n');
    }
    out
}
