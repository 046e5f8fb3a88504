//! `autoscale-node`: the one binary. Parses arguments, builds library configs, runs.

mod config;
mod eval;
mod farm;
mod limits;
mod run;
mod scale;
mod serve;
mod trace_args;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Redis-protocol broker, autoscaling agent, scaler and farm functions in one binary.
#[derive(Parser, Debug)]
#[command(
    name = "autoscale-node",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `serve` options, accepted without the subcommand (`autoscale-node --port 7000`).
    #[command(flatten)]
    serve: serve::ServeArgs,
    /// A TOML file of option values (flags and environment variables take precedence).
    #[arg(long, global = true, env = "AUTOSCALE_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `broker=debug`.
    #[arg(long, global = true, env = "AUTOSCALE_LOG", default_value = "info")]
    log: String,
    /// Log lines as text (coloured only on a terminal, and never with NO_COLOR set) or as one
    /// JSON object per line, for a cluster's log pipeline.
    #[arg(long, global = true, env = "AUTOSCALE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker (the default when no subcommand is given).
    Serve(serve::ServeArgs),
    /// Run the whole farm on this machine with autoscaling, a live view and a report.
    Run(run::RunArgs),
    /// Run the emitter: phase configs from input_queue become tasks in worker_queue.
    Emitter(farm::EmitterArgs),
    /// Ask a running node to add (+N), gracefully remove (-N) or set (N) workers.
    Scale(scale::ScaleArgs),
    /// Run one worker: tasks from worker_queue become results in result_queue.
    Worker(farm::WorkerArgs),
    /// Run the collector: results become output records with their QoS.
    Collector(farm::FunctionArgs),
    /// Compare scaling policies in the simulator on identical seeded workloads.
    Eval(eval::EvalArgs),
    /// Train the neural policy in the simulator and write it as safetensors.
    Train(train::TrainArgs),
}

/// Logs to stderr: JSON lines, or text with colour only when a person reads it (a terminal,
/// NO_COLOR unset) — escape codes in a file or a pipe are noise.
fn init_logs(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => {
            // The functions a node starts log in the same format (they read the environment).
            std::env::set_var("AUTOSCALE_LOG_FORMAT", "json");
            builder.json().init()
        }
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init()
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let names: Vec<String> = <Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if let (Some(path), sub) = config::find(&argv, &names) {
        if let Err(e) = config::apply::<Cli>(std::path::Path::new(&path), sub.as_deref()) {
            eprintln!("autoscale-node: error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse();
    // `run` draws a live view; routine logs (every scaling step) would tear it.
    let log = if matches!(cli.command, Some(Command::Run(_)))
        && std::env::var_os("AUTOSCALE_LOG").is_none()
        && cli.log == "info"
    {
        "warn"
    } else {
        cli.log.as_str()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    init_logs(filter, cli.log_format);
    let result = match cli.command {
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Scale(args)) => scale::run(args),
        Some(Command::Emitter(args)) => farm::run(farm::Role::Emitter(args)),
        Some(Command::Worker(args)) => farm::run(farm::Role::Worker(args)),
        Some(Command::Collector(args)) => farm::run(farm::Role::Collector(args)),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Train(args)) => train::run(args),
        None => serve::run(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`autoscale-node eval | head`): not an error of ours.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("autoscale-node: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
