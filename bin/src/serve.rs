//! `autoscale-node serve`: the broker as a service.

use anyhow::Context;
use broker::{Broker, BrokerConfig};
use clap::Args;
use std::io::Write;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AUTOSCALE_BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// TCP port for the Redis protocol (0 picks a free port and prints it).
    #[arg(long, short = 'p', env = "AUTOSCALE_PORT", default_value_t = 6379)]
    pub port: u16,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "AUTOSCALE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Number of databases (SELECT 0..N-1).
    #[arg(long, env = "AUTOSCALE_DATABASES", default_value_t = 16)]
    pub databases: usize,
    /// Largest bulk string a client may send, in bytes (`proto-max-bulk-len`).
    #[arg(long, env = "AUTOSCALE_PROTO_MAX_BULK_LEN", default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: usize,
    /// Runtime threads. 1 (the default) is Redis's model: one event loop, no cross-thread
    /// wake-ups, fastest when clients share the machine; N > 1 spreads connections over N
    /// threads (the keyspace stays behind one lock); 0 = one per core.
    #[arg(long, env = "AUTOSCALE_THREADS", default_value_t = 1)]
    pub threads: usize,
}

impl ServeArgs {
    fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            requirepass: self.requirepass.clone().filter(|p| !p.is_empty()),
            databases: self.databases.max(1),
            proto_max_bulk_len: self.proto_max_bulk_len,
            ..BrokerConfig::default()
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // One thread means Redis's model exactly: a single event loop, no cross-thread wakeups.
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.threads > 1 {
        builder.worker_threads(args.threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = format!("{}:{}", args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        // The bound address on stdout, so scripts and tests that pass --port 0 can find it.
        println!("autoscale-node listening on {local}");
        std::io::stdout().flush().ok();
        tracing::info!(%local, "broker ready to accept connections");
        let broker = Broker::new(args.broker_config());
        broker.serve(listener, shutdown_signal()).await?;
        tracing::info!("broker stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
