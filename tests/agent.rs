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
    // A model told the calendar in every training scenario (the bundled calendar model) never
    // learned to decide without one: refused where none is known, with the way out.
    let bundled_calendar = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/calendar.safetensors");
    for args in [
        &[
            "eval",
            "--policy",
            bundled_calendar,
            "--no-calendar",
            "--baselines",
            "none",
        ][..],
        &[
            "run",
            "--policy",
            bundled_calendar,
            "--no-calendar",
            "--tasks",
            "10",
        ][..],
        &[
            "serve",
            "--check",
            "--scaler",
            "local",
            "--policy",
            bundled_calendar,
        ][..],
    ] {
        let out = node(args);
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("never learned to decide without one") && err.contains("--policy bundled"),
            "{args:?}: {err}"
        );
    }
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

/// A fresh directory for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("autoscale-node-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refusal(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn eval_prints_the_effective_workload_and_takes_it_back() {
    let dir = scratch("print-workload");
    // The default, as JSON, is the generator's default configuration.
    let printed = stdout(&node_within(&["eval", "--print-workload"]));
    let config: workload::WorkloadConfig = serde_json::from_str(&printed).unwrap();
    assert_eq!(config, workload::WorkloadConfig::default());
    // Flags are applied: a preset with the shuffle, which a file then reproduces exactly.
    let printed = stdout(&node_within(&[
        "eval",
        "--print-workload",
        "--workload-preset",
        "bursty-mmpp",
        "--base-rate",
        "240",
    ]));
    let config: workload::WorkloadConfig = serde_json::from_str(&printed).unwrap();
    assert_eq!(config.base_rate_per_min, 240.0);
    assert!(matches!(config.phases[0].pattern, workload::Pattern::Mmpp { .. }));
    let path = dir.join("mmpp.json");
    std::fs::write(&path, &printed).unwrap();
    let from_file = stdout(&node_within(&[
        "eval",
        "--baselines",
        "static:12",
        "--episodes",
        "2",
        "--workload",
        path.to_str().unwrap(),
    ]));
    let from_flags = stdout(&node_within(&[
        "eval",
        "--baselines",
        "static:12",
        "--episodes",
        "2",
        "--workload-preset",
        "bursty-mmpp",
        "--base-rate",
        "240",
    ]));
    let table = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with('|'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(table(&from_file), table(&from_flags));
    // An unknown preset is refused with the list of names.
    let err = refusal(&node_within(&["eval", "--workload-preset", "nope"]));
    assert!(
        err.contains("possible values: original, shuffled, rate200"),
        "{err}"
    );
    assert!(err.contains("trace-smooth, trace-bursty"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_workload_preset_evaluates() {
    let help = stdout(&node_within(&["eval", "--help"]));
    for preset in workload::presets::PRESETS {
        assert!(help.contains(preset.name), "--help lists {}", preset.name);
        let out = stdout(&node_within(&[
            "eval",
            "--baselines",
            "static:16,load-proportional",
            "--episodes",
            "1",
            "--workload-preset",
            preset.name,
        ]));
        assert!(
            out.contains("| static:16 |") && out.contains("| load-proportional |"),
            "{out}"
        );
    }
}

#[test]
fn eval_replays_a_csv_trace_and_names_the_line_of_a_bad_one() {
    let dir = scratch("trace");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    // 5 s of counts; an exact replay keeps them: 30 tasks whatever the seed.
    let counts = write("counts.csv", "second,count\n0,4\n1,9\n2,0\n3,12\n4,5\n");
    let json = dir.join("trace.json");
    let out = stdout(&node_within(&[
        "eval",
        "--trace",
        &counts,
        "--baselines",
        "static:10",
        "--episodes",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(out.contains("episodes of 30 tasks"), "{out}");
    let printed = stdout(&node_within(&["eval", "--trace", &counts, "--print-workload"]));
    let config: workload::WorkloadConfig = serde_json::from_str(&printed).unwrap();
    assert_eq!(config.phases.len(), 1);
    assert!(matches!(
        &config.phases[0].pattern,
        workload::Pattern::Counts { counts, replay: workload::Replay::Exact, .. } if counts == &[4.0, 9.0, 0.0, 12.0, 5.0]
    ));
    // Timestamps with processing times, resampled, and with a plan of their own.
    let stamps = write(
        "stamps.csv",
        "timestamp,processing_s\n10.0,0.5\n10.2,1.0\n11.9,2.0\n13.5,0.7\n",
    );
    let plan = write("plan.csv", "rate\n1\n1\n2\n4\n");
    let out = stdout(&node_within(&[
        "eval",
        "--trace",
        &stamps,
        "--trace-replay",
        "resampled",
        "--trace-plan",
        &plan,
        "--baselines",
        "static:4,rate-oracle",
        "--episodes",
        "2",
    ]));
    assert!(out.contains("episodes of 4 tasks"), "{out}");
    // Bad files: the error names the file and the line.
    for (name, text, says) in [
        (
            "back.csv",
            "timestamp\n1.0\n3.0\n2.0\n",
            "trace line 4: timestamp 2 is before the previous one (3)",
        ),
        (
            "negative.csv",
            "second,count\n0,3\n1,-1\n",
            "trace line 3: \"-1\" is not a non-negative number",
        ),
        ("empty.csv", "timestamp\n", "the trace has no data rows"),
        (
            "text.csv",
            "# recorded\ncount\n2\nlots\n",
            "trace line 4: \"lots\" is not a non-negative number",
        ),
        (
            "fraction.csv",
            "count\n2\n2.5\n",
            "trace line 3: 2.5 is not a whole count; an exact replay needs counts",
        ),
    ] {
        let path = write(name, text);
        let err = refusal(&node_within(&[
            "eval",
            "--trace",
            &path,
            "--baselines",
            "static:4",
        ]));
        assert!(
            err.contains(&format!("{path}: ")) && err.contains(says),
            "{name}: {err}"
        );
    }
    let err = refusal(&node_within(&["eval", "--trace", &counts, "--trace-plan", &plan]));
    assert!(
        err.contains("the plan has 4 seconds of rates; the trace lasts 5 s"),
        "{err}"
    );
    let err = refusal(&node_within(&["eval", "--trace", &counts, "--base-rate", "100"]));
    assert!(err.contains("--base-rate does not apply to --trace"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn inconsistent_trace_phases_in_a_workload_file_are_refused() {
    let dir = scratch("trace-json");
    let mut w = serde_json::to_value(workload::WorkloadConfig::default()).unwrap();
    // Used to replay with the base rate's count instead of the trace's.
    w["phases"][0]["pattern"] = serde_json::json!({"kind": "trace", "weights": vec![1.0; 60]});
    let path = dir.join("no-total.json");
    std::fs::write(&path, w.to_string()).unwrap();
    let err = refusal(&node_within(&["eval", "--workload", path.to_str().unwrap()]));
    assert!(
        err.contains("no-total.json: phases[0].pattern.total: a trace needs its task count"),
        "{err}"
    );
    // Used to repeat the last weight for the seconds the trace does not have.
    w["phases"][0]["pattern"] = serde_json::json!({"kind": "trace", "weights": vec![1.0; 40], "total": 50});
    let path = dir.join("short.json");
    std::fs::write(&path, w.to_string()).unwrap();
    let err = refusal(&node_within(&["eval", "--workload", path.to_str().unwrap()]));
    assert!(
        err.contains("short.json: phases[0].duration_s: 60 s does not match the trace's 40 weights"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_policy_is_capped_unseen() {
    let dir = scratch("clamp");
    let json = dir.join("eval.json");
    // Without --max-workers, a static farm larger than the default bound runs as asked.
    let out = stdout(&node_within(&[
        "eval",
        "--baselines",
        "static:40,static:12",
        "--episodes",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(
        out.contains("Worker bounds: 1..=40; max workers raised from 32 to 40 for static:40"),
        "{out}"
    );
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows[0]["max_workers"], 40.0);
    assert_eq!(rows[0]["clamped"], 0.0);
    // With a bound, the clamped policy says so in the table, under it and in the JSON.
    let report = dir.join("report");
    let out = stdout(&node_within(&[
        "eval",
        "--baselines",
        "static:40,static:12",
        "--episodes",
        "1",
        "--max-workers",
        "32",
        "--json",
        json.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let header = out.lines().next().unwrap();
    assert!(header.ends_with("| clamped |"), "{out}");
    assert!(out.contains("Clamped to the worker bounds 1..=32"), "{out}");
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows[0]["max_workers"], 32.0);
    assert!(rows[0]["clamped"].as_f64().unwrap() > 20.0, "{rows}");
    assert_eq!(rows[1]["clamped"], 0.0);
    let md = std::fs::read_to_string(report.join("eval.md")).unwrap();
    assert!(
        md.contains("Clamped to the worker bounds 1..=32") && md.contains("static:40 ("),
        "{md}"
    );
    // A floor clamps too, and nonsense bounds are refused.
    let out = stdout(&node_within(&[
        "eval",
        "--baselines",
        "static:2",
        "--episodes",
        "1",
        "--min-workers",
        "4",
    ]));
    assert!(out.contains("Clamped to the worker bounds 4..=32"), "{out}");
    let err = refusal(&node_within(&[
        "eval",
        "--min-workers",
        "9",
        "--max-workers",
        "8",
    ]));
    assert!(
        err.contains("--min-workers must be between 1 and 8, got 9"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn run_replays_a_trace_exactly_and_train_checks_its_trace() {
    let dir = scratch("run-trace");
    let trace = dir.join("burst.csv");
    std::fs::write(&trace, "second,count\n0,6\n1,0\n2,9\n3,3\n").unwrap();
    let report = dir.join("report");
    let out = node_within(&[
        "run",
        "--trace",
        trace.to_str().unwrap(),
        "--time-scale",
        "0.1",
        "--policy",
        "static:8",
        "--report",
        report.to_str().unwrap(),
    ]);
    stdout(&out);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["tasks"], 18);
    assert_eq!(r["completed"], 18);
    assert_eq!(r["lost"], 0);
    let err = refusal(&node_within(&[
        "run",
        "--trace",
        trace.to_str().unwrap(),
        "--tasks",
        "10",
    ]));
    assert!(err.contains("--tasks scales the default phases"), "{err}");
    // train reads and checks the trace (errors name the file and the line) ...
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "timestamp\n2\n1\n").unwrap();
    let err = refusal(&node_within(&["train", "--trace", bad.to_str().unwrap()]));
    assert!(
        err.contains("bad.csv: trace line 3: timestamp 1 is before the previous one (2)"),
        "{err}"
    );
    // ... the network trainers cannot use one, which they say instead of ignoring the flag ...
    let err = refusal(&node_within(&["train", "--trace", trace.to_str().unwrap()]));
    assert!(
        err.contains("only --method guided trains on a recorded workload"),
        "{err}"
    );
    // ... and the guided trainer fine-tunes on it: a policy file `eval` runs on the trace.
    let tuned = dir.join("tuned.safetensors");
    let out = node_within(&[
        "train",
        "--method",
        "guided",
        "--trace",
        trace.to_str().unwrap(),
        "--decision-period-s",
        "1",
        "--generations",
        "2",
        "--pairs",
        "2",
        "--scenarios",
        "1",
        "--out",
        tuned.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let curve = std::fs::read_to_string(dir.join("tuned.curve.csv")).unwrap();
    assert_eq!(
        curve.lines().count(),
        3,
        "a header and one row per generation: {curve}"
    );
    let out = node_within(&[
        "eval",
        "--trace",
        trace.to_str().unwrap(),
        "--policy",
        tuned.to_str().unwrap(),
        "--baselines",
        "static:2",
        "--episodes",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tuned.safetensors"), "{stdout}");
    // Continuing it at another decision period is refused, naming the file's.
    let err = refusal(&node_within(&[
        "train",
        "--method",
        "guided",
        "--init",
        tuned.to_str().unwrap(),
        "--decision-period-s",
        "4",
        "--generations",
        "1",
        "--out",
        dir.join("other.safetensors").to_str().unwrap(),
    ]));
    assert!(err.contains("decides every 1 s"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `serve --queue` with a framework's queue: the settings it implies, and the combinations
/// that could not work refused with what to do instead.
#[test]
fn a_framework_queue_selects_its_policy_and_refuses_scalers_that_cannot_remove_its_workers() {
    let out = node_within(&[
        "serve",
        "--check",
        "--scaler",
        "local",
        "--queue",
        "stream:orders@billing",
        "--worker-command",
        "my-worker",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("queue       stream:orders@billing"), "{text}");
    assert!(text.contains("policy      queue-proportional"), "{text}");
    for (args, says) in [
        (
            &["--scaler", "local", "--queue", "list:celery"][..],
            "add --worker-command",
        ),
        (
            &["--scaler", "kubernetes", "--queue", "list:celery"][..],
            "use --scaler keda",
        ),
        (
            &["--scaler", "openfaas", "--worker-command", "x"][..],
            "needs --scaler local",
        ),
        (&["--queue", "worker_queue"][..], "expected farm, list:KEY"),
        (
            &["--queue", "list:celery", "--record", "x.csv"][..],
            "needs --queue farm",
        ),
    ] {
        let mut all = vec!["serve", "--check"];
        all.extend_from_slice(args);
        let out = node_within(&all);
        assert!(!out.status.success(), "{all:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{all:?}: {err}");
    }
    let out = node_within(&["run", "--worker-command", "x", "--tasks", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("serve --queue"), "{err}");
}
