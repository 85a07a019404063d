//! Peer tools some tests drive (Python with Microsoft's libraries, Node.js, a browser). A missing
//! one fails the test under `CI=true`; elsewhere the test is skipped with a line on the terminal:
//! written to the stderr handle directly, which libtest does not capture (it captures only the
//! `print!`/`eprint!` macros), so a person running plain `cargo test` sees it.

use std::io::Write;
use std::process::Command;

/// Whether `missing` (a reason, or `None` when the peer is there) lets the test run.
pub fn available(missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {missing}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {missing}");
    false
}

/// `python3` can import `module` (installed with `pip install {package}`).
pub fn python_module(module: &str, package: &str) -> bool {
    let missing = match Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some(format!(
            "the Python library {package} is not installed (python3 -m pip install {package})"
        )),
        Err(e) => Some(format!("python3 is not available ({e})")),
    };
    available(missing)
}

/// A command answers `--version`.
pub fn command(program: &str, install: &str) -> bool {
    let missing = match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some(format!("{program} is not available ({install})")),
    };
    available(missing)
}
