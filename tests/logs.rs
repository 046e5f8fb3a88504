//! What the node writes to its log when nobody is at a terminal: plain text without escape
//! codes, or JSON lines on request; and a policy given to a plain broker is called out.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `serve ARGS` with stderr piped (not a terminal), waits until it listens, stops it
/// with SIGTERM and returns everything it logged.
fn serve_log(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["serve", "--port", "0", "--http-port", "0"])
        .args(args)
        .env("AUTOSCALE_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn autoscale-node");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("autoscale-node http on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the node did not start");
    // Give the start-up lines a moment, then ask it to stop as an orchestrator would.
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "the node did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    log
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes_and_a_policy_without_a_scaler_is_called_out() {
    let log = serve_log(&["--policy", "static:3"]);
    assert!(log.contains("broker ready to accept connections"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a piped log: {log:?}");
    assert!(
        log.contains("no --scaler: this node is a plain broker") && log.contains("static:3"),
        "{log}"
    );
    // The plain default says nothing of the sort.
    let log = serve_log(&[]);
    assert!(!log.contains("no --scaler"), "{log}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let log = serve_log(&["--log-format", "json"]);
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("broker ready to accept connections")),
        "{log}"
    );
}
