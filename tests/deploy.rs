//! The deployment files are checked, so a typo fails the build: the Kubernetes manifests
//! against the Kubernetes schemas (`kubernetes-validate --strict`, from PyPI), the OpenFaaS
//! stack against the stack format's keys, the pods against the restricted Pod Security profile
//! and our readiness rule, the node's ConfigMap against our own options, and the image's build
//! context against what it must leave out.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A tool CI installs; locally a missing one skips the check with a note.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping: {tool} not installed");
    }
    ok
}

#[test]
fn kubernetes_manifests_match_the_schemas() {
    if !have("kubernetes-validate", &["--version"]) {
        return;
    }
    let dir = repo().join("deploy/kubernetes");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains("ERROR"), "{text}");
    // Every resource was checked, not skipped (the node's PodDisruptionBudget included).
    assert!(text.matches("passed for resource").count() >= 13, "{text}");
    assert!(text.contains("poddisruptionbudget/autoscale-node"), "{text}");
}

#[test]
fn kubernetes_pods_are_restricted_limited_and_ready_only_when_connected() {
    if !have("python3", &["-c", "import yaml"]) {
        return;
    }
    let out = Command::new("python3")
        .arg(repo().join("deploy/check_manifests.py"))
        .arg(repo().join("deploy/kubernetes"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains(": ok (4 Deployments)"),
        "{text}"
    );
}

#[test]
fn the_image_build_context_leaves_out_target_and_git() {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", ".git"] {
        assert!(
            rules.contains(&needed),
            "{needed} missing from .dockerignore: {rules:?}"
        );
    }
    // What the build needs stays in: the bundled models and traces are compiled in.
    for kept in ["models", "traces", "Cargo.lock"] {
        assert!(
            !rules.iter().any(|r| r.trim_start_matches('/').starts_with(kept)),
            "{kept} must stay in the build context"
        );
    }
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("healthcheck_interval="),
        "the watchdog's drain is not bounded"
    );
    assert!(!dockerfile.contains("proxies the gateway's health checks"));
}

#[test]
fn openfaas_stack_uses_known_keys() {
    if !have("python3", &["-c", "import yaml"]) {
        return;
    }
    let out = Command::new("python3")
        .arg(repo().join("deploy/check_stack.py"))
        .arg(repo().join("deploy/openfaas/stack.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn node_configmap_is_a_valid_config() {
    let manifest = std::fs::read_to_string(repo().join("deploy/kubernetes/node.yaml")).unwrap();
    // The block under `node.toml: |`, de-indented.
    let mut lines = manifest
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("node.toml: |"))
        .skip(1);
    let mut toml = String::new();
    for l in lines.by_ref() {
        if !l.starts_with("    ") {
            break;
        }
        toml.push_str(l.trim_start());
        toml.push('\n');
    }
    assert!(toml.contains("scaler = \"kubernetes\""), "{toml}");
    let path = std::env::temp_dir().join(format!("autoscale-node-configmap-{}.toml", std::process::id()));
    std::fs::write(&path, &toml).unwrap();
    // The manifest mounts the password from a Secret; here a stand-in file takes its place
    // (the environment overrides the config file's path).
    assert!(toml.contains("requirepass-file = "), "{toml}");
    let secret = std::env::temp_dir().join(format!("autoscale-node-secret-{}", std::process::id()));
    std::fs::write(&secret, "0123abcd\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["serve", "--config", path.to_str().unwrap(), "--check"])
        .env("AUTOSCALE_REQUIREPASS_FILE", &secret)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(&secret).ok();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("configuration ok"),
        "{text}"
    );
    assert!(text.contains("Kubernetes"), "{text}");
    assert!(text.contains("password set, protected mode yes"), "{text}");
}
