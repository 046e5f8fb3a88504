//! `autoscale-node scale +N|-N|N`: asks a running node (`serve --scaler ...` or `run`) to add,
//! gracefully remove, or set workers, and waits for its answer.

use anyhow::Context;
use autoscale_node::requests::{self, ScaleOp};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// `+N` adds N workers, `-N` removes N gracefully (SYN/ACK), `N` sets the count.
    #[arg(allow_hyphen_values = true, value_name = "+N|-N|N")]
    pub change: String,
    /// The node's broker.
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis: String,
    /// Seconds to wait for removed workers to acknowledge.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
}

/// `+3` → (Add, 3), `-2` → (Remove, 2), `5` → (Set, 5).
pub fn parse_change(s: &str) -> anyhow::Result<(ScaleOp, u32)> {
    let s = s.trim();
    let (op, digits) = match s.as_bytes().first() {
        Some(b'+') => (ScaleOp::Add, &s[1..]),
        Some(b'-') => (ScaleOp::Remove, &s[1..]),
        _ => (ScaleOp::Set, s),
    };
    let n: u32 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("expected +N, -N or N (a whole number), got {s:?}"))?;
    Ok((op, n))
}

pub fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let (op, n) = parse_change(&args.change)?;
    if !(args.timeout_s.is_finite() && args.timeout_s >= 0.0) {
        anyhow::bail!("--timeout-s must be zero or more");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = redis::Client::open(args.redis.as_str())
            .with_context(|| format!("bad redis URL {}", args.redis))?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to {}", args.redis))?;
        if !requests::controller_present(&mut conn).await? {
            anyhow::bail!(
                "no autoscale-node control loop is connected to {}: start one with \
                 `autoscale-node serve --scaler local` (or `run`) first",
                args.redis
            );
        }
        let reply = requests::send(&mut conn, op, n, args.timeout_s, true)
            .await?
            .context("the node sent no reply")?;
        let w = &reply.workers;
        println!(
            "{}\nworkers: {} live, {} starting, {} leaving, {} scale-downs pending; target {}",
            reply.message, w.live, w.starting, w.leaving, w.pending_scale_down, reply.target
        );
        if !reply.ok {
            anyhow::bail!("scaling did not complete");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse() {
        assert_eq!(parse_change("+2").unwrap(), (ScaleOp::Add, 2));
        assert_eq!(parse_change("-1").unwrap(), (ScaleOp::Remove, 1));
        assert_eq!(parse_change("7").unwrap(), (ScaleOp::Set, 7));
        assert!(parse_change("+").is_err());
        assert!(parse_change("two").is_err());
        assert!(parse_change("-x").is_err());
    }
}
