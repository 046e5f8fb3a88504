//! `autoscale-node`: the one binary. Parses arguments, builds library configs, runs.

mod serve;

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
