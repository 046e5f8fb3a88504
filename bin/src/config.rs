//! `--config FILE`: a TOML file of option values, e.g.
//!
//! ```toml
//! scaler = "local"
//! policy = "reactive-maximum"
//! max-workers = 24
//! ```
//!
//! Keys are the subcommand's long option names (`max-workers` or `max_workers`). A value
//! applies unless the option is also given on the command line or in its environment
//! variable: flags > environment > file > defaults. Unknown keys are an error, so a typo
//! never silently falls back to a default.

use anyhow::Context;
use clap::CommandFactory;
use std::path::Path;

/// Loads `path` into the environment variables of `subcommand`'s options.
pub fn apply<C: CommandFactory>(path: &Path, subcommand: Option<&str>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let root = C::command();
    let cmd = match subcommand {
        Some(name) => root
            .find_subcommand(name)
            .with_context(|| format!("unknown subcommand {name}"))?
            .clone(),
        None => root,
    };
    let mut assignments = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
            .with_context(|| {
                let known: Vec<&str> = cmd
                    .get_arguments()
                    .filter(|a| a.get_env().is_some())
                    .filter_map(|a| a.get_long())
                    .collect();
                format!(
                    "{}: unknown option {key:?} for `{}`; known: {}",
                    path.display(),
                    cmd.get_name(),
                    known.join(", ")
                )
            })?;
        let env = arg
            .get_env()
            .with_context(|| format!("{}: option {key:?} cannot be set from a file", path.display()))?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "{}: option {key:?} must be a string, number or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        };
        assignments.push((env.to_os_string(), text));
    }
    for (env, text) in assignments {
        if std::env::var_os(&env).is_none() {
            // Single-threaded here: main calls this before starting any runtime.
            std::env::set_var(&env, text);
        }
    }
    Ok(())
}

/// The `--config` value in `args` (or `AUTOSCALE_CONFIG`), and the subcommand named.
pub fn find(args: &[String], subcommands: &[&str]) -> (Option<String>, Option<String>) {
    let mut config = std::env::var("AUTOSCALE_CONFIG").ok().filter(|s| !s.is_empty());
    let mut sub = None;
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--config" {
            config = args.get(i + 1).cloned();
            i += 1;
        } else if let Some(v) = a.strip_prefix("--config=") {
            config = Some(v.to_string());
        } else if sub.is_none() && subcommands.contains(&a.as_str()) {
            sub = Some(a.clone());
        }
        i += 1;
    }
    (config, sub)
}
