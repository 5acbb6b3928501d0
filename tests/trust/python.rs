//! Running Python checks written from the specs, against the independent
//! implementations: the official `standardwebhooks` package and
//! `cryptography`'s ed25519. `scripts/install-python-test-deps` installs
//! them (scripts/test and .ci/run call it); where they cannot be had the
//! checks are skipped with a message, except under CI (`CI` set), where
//! they fail.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Whether `python3` can import every module in `modules`; `Err` says why
/// not, and the caller skips (or, under CI, fails).
pub fn available(modules: &[&str]) -> Result<(), String> {
    let script = modules
        .iter()
        .map(|m| format!("import {m}\n"))
        .collect::<String>();
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "python3 cannot import {modules:?} ({}); run scripts/install-python-test-deps",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("python3 cannot be run: {e}")),
    }
}

/// `true` when the check can run; otherwise prints why it is skipped and
/// returns `false`, or panics under CI.
pub fn require(test: &str, modules: &[&str]) -> bool {
    match available(modules) {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => panic!("CI is set and {why}"),
        Err(why) => {
            eprintln!("skipped {test}: {why}");
            false
        }
    }
}

/// Runs `script` with `python3 -c`, `input` on its stdin.
pub fn run(script: &str, input: &[u8]) -> Output {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to python3");
    child.wait_with_output().expect("python3 runs")
}

/// Runs `script` and returns its stdout, panicking with its stderr when it
/// fails.
#[track_caller]
pub fn run_ok(script: &str, input: &[u8]) -> String {
    let out = run(script, input);
    assert!(
        out.status.success(),
        "python3 failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
