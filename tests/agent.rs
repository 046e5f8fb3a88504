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
