//! `autoscale-node`: the one binary. Parses arguments, builds library configs, runs.

mod eval;
mod farm;
mod run;
mod serve;
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
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `broker=debug`.
    #[arg(long, global = true, env = "AUTOSCALE_LOG", default_value = "info")]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker (the default when no subcommand is given).
    Serve(serve::ServeArgs),
    /// Run the whole farm on this machine with autoscaling, a live view and a report.
    Run(run::RunArgs),
    /// Run the emitter: phase configs from input_queue become tasks in worker_queue.
    Emitter(farm::EmitterArgs),
    /// Run one worker: tasks from worker_queue become results in result_queue.
    Worker(farm::FunctionArgs),
    /// Run the collector: results become output records with their QoS.
    Collector(farm::FunctionArgs),
    /// Compare scaling policies in the simulator on identical seeded workloads.
    Eval(eval::EvalArgs),
    /// Train the neural policy in the simulator and write it as safetensors.
    Train(train::TrainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Emitter(args)) => farm::run(farm::Role::Emitter(args)),
        Some(Command::Worker(args)) => farm::run(farm::Role::Worker(args)),
        Some(Command::Collector(args)) => farm::run(farm::Role::Collector(args)),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Train(args)) => train::run(args),
        None => serve::run(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoscale-node: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
