//! The agent commands end to end: a tiny `train` run writes a model that `eval` then loads and
//! compares against the baselines; a file with the wrong schema is refused with a clear error.

use std::process::Command;

fn node(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(args)
        .output()
        .expect("run autoscale-node")
}

#[test]
fn tiny_train_then_eval_with_the_model() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("tiny.safetensors");
    let model_s = model.to_str().unwrap();
    let out = node(&[
        "train",
        "--out",
        model_s,
        "--seed",
        "3",
        "--generations",
        "2",
        "--pairs",
        "2",
        "--scenarios",
        "1",
    ]);
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(model.exists());
    assert!(dir.join("tiny.curve.csv").exists() && dir.join("tiny.curve.svg").exists());
    let json = dir.join("eval.json");
    let out = node(&[
        "eval",
        "--policy",
        model_s,
        "--baselines",
        "static:12,rate-oracle",
        "--episodes",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("tiny.safetensors") && table.contains("static:12") && table.contains("rate-oracle"),
        "{table}"
    );
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows.as_array().map(|a| a.len()), Some(3));

    // The load-calendar reference takes its risk and waiting time; nonsense is refused.
    let out = node(&["eval", "--baselines", "rate-oracle:0.03:1.5", "--episodes", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rate-oracle:0.03:1.5"));
    let out = node(&["eval", "--baselines", "rate-oracle:-1", "--episodes", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"-1\" is not a positive number"), "{err}");

    // The model was trained with 8 s decisions: evaluating it at another period is refused.
    let out = node(&[
        "eval",
        "--policy",
        model_s,
        "--baselines",
        "none",
        "--decision-period-s",
        "4",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--decision-period-s 4 differs from the 8 s"),
        "{err}"
    );

    // Imitation of the load-calendar expert at 4 s decisions; the model carries its period,
    // which `eval` and the node then use, and asking for another is refused.
    let cal = dir.join("cal.safetensors");
    let cal_s = cal.to_str().unwrap();
    let out = node(&[
        "train",
        "--method",
        "imitation",
        "--expert",
        "rate-oracle:0.03:1.5",
        "--decision-period-s",
        "4",
        "--generations",
        "1",
        "--scenarios",
        "1",
        "--epochs",
        "20",
        "--out",
        cal_s,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = dir.join("report");
    let out = node(&[
        "eval",
        "--policy",
        cal_s,
        "--baselines",
        "rate-oracle",
        "--episodes",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(report.join("eval.md")).unwrap();
    assert!(
        md.contains("decisions every 4 s") && md.contains("load calendar told to the policies: yes"),
        "{md}"
    );
    // Without the calendar the network falls back on observed rates; the reference that
    // needs the calendar cannot run.
    let out = node(&[
        "eval",
        "--policy",
        cal_s,
        "--baselines",
        "none",
        "--no-calendar",
        "--episodes",
        "1",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = node(&[
        "eval",
        "--baselines",
        "rate-oracle",
        "--no-calendar",
        "--episodes",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reads the load calendar"), "{err}");
    let out = node(&["serve", "--check", "--scaler", "local", "--policy", cal_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("every 4 s"), "{text}");
    let out = node(&["serve", "--check", "--policy", cal_s, "--decision-period-s", "8"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("differs from the 4 s"), "{err}");
    // Continuing it with ES at another period is refused too.
    let out = node(&[
        "train",
        "--init",
        cal_s,
        "--generations",
        "1",
        "--pairs",
        "1",
        "--scenarios",
        "1",
        "--out",
        dir.join("x.safetensors").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pass --decision-period-s 4"), "{err}");
    for (flag, value, says) in [
        ("--expert", "static:3", "the expert is"),
        ("--calendar-share", "1.5", "between 0 and 1"),
    ] {
        let out = node(&["train", flag, value, "--method", "imitation", "--out", cal_s]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }

    std::fs::write(
        dir.join("bad.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
    )
    .unwrap();
    let out = node(&[
        "eval",
        "--policy",
        dir.join("bad.safetensors").to_str().unwrap(),
        "--baselines",
        "none",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match this build") || err.contains("not a valid safetensors"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_reader_that_goes_away_ends_eval_quietly() {
    // `autoscale-node eval | head -3`: the pipe closes before the table is written.
    let dir = std::env::temp_dir().join(format!("autoscale-node-pipe-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["eval", "--baselines", "static:12", "--episodes", "1", "--report"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run autoscale-node");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The report is written before the terminal output.
    assert!(dir.join("eval.md").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `autoscale-node args`, killing it if it has not finished within 60 s (a workload
/// that slipped through validation would allocate until the machine gives out).
fn node_within(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run autoscale-node");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("autoscale-node {args:?} ran for over 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn workload_files_beyond_the_limits_are_refused_before_anything_is_generated() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-workload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default = serde_json::to_value(workload::WorkloadConfig::default()).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "rate.json",
            |w| w["base_rate_per_min"] = 1e9.into(),
            "rate.json: the workload would generate 3800000000 tasks; at most 1000000 are allowed",
        ),
        (
            "duration.json",
            |w| w["phases"][0]["duration_s"] = 1e12.into(),
            "duration.json: phases[0].duration_s must be a number of seconds above 0 and at most 1000000, got 1000000000000",
        ),
        (
            "windows.json",
            |w| w["window_s"] = 1e-5.into(),
            "windows.json: the workload has 24000000 rate windows; at most 1000000 are allowed",
        ),
        (
            "oscillation.json",
            |w| w["phases"][2]["pattern"]["min"] = (-1.0).into(),
            "oscillation.json: phases[2].pattern.min must be a non-negative number, got -1",
        ),
    ];
    for (name, edit, says) in cases {
        let mut w = default.clone();
        edit(&mut w);
        let path = dir.join(name);
        std::fs::write(&path, w.to_string()).unwrap();
        let out = node_within(&[
            "eval",
            "--baselines",
            "static:4",
            "--episodes",
            "1",
            "--workload",
            path.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains(says), "{name}: {err}");
    }
    // The file as it was is accepted.
    let path = dir.join("default.json");
    std::fs::write(&path, default.to_string()).unwrap();
    let out = node_within(&[
        "eval",
        "--baselines",
        "static:14",
        "--episodes",
        "1",
        "--workload",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).ok();
}
