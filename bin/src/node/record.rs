//! `serve --record FILE`: the traffic the node served, as a trace that `eval --trace` and
//! `train --trace` replay — one row per task pushed to the work queue, its arrival time and
//! processing time in workload seconds (`timestamp,processing_s`, docs/workloads.md).
//!
//! A queue hook copies each pushed element into a bounded channel (on the broker's command
//! path: no parsing, no I/O, and a full channel drops and counts instead of blocking); the
//! control loop drains it every tick, parses the tasks and writes them through a buffer that
//! it flushes every second and on shutdown. Memory stays bounded whatever the traffic.

use super::clock::FarmClock;
use broker::{QueueEvent, QueueHook};
use bytes::Bytes;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arrivals waiting to be written, at most (a few MB of task messages).
pub const CHANNEL_CAPACITY: usize = 16_384;
/// How often the file is flushed.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The hook: every element producers push to the work queue's head (LPUSH — a re-queued task
/// goes back at the consumer end and is not a new arrival), with the instant it arrived.
pub struct ArrivalHook {
    queue: Vec<u8>,
    tx: SyncSender<(Instant, Bytes)>,
    dropped: Arc<AtomicU64>,
}

impl QueueHook for ArrivalHook {
    fn on_event(&self, _event: &QueueEvent) {}

    fn on_elements(&self, db: usize, queue: &[u8], at_head: bool, elements: &[Bytes]) {
        if db != 0 || !at_head || queue != self.queue.as_slice() {
            return;
        }
        let now = Instant::now();
        for e in elements {
            match self.tx.try_send((now, Bytes::copy_from_slice(e))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Writes what the hook saw to the trace file.
pub struct ArrivalRecorder {
    path: PathBuf,
    rx: Receiver<(Instant, Bytes)>,
    out: BufWriter<File>,
    dropped: Arc<AtomicU64>,
    /// Workload seconds from the farm's `program_start_time` to the node clock's 0.
    origin_s: f64,
    last_flush: Instant,
    last_t: f64,
    pub recorded: u64,
    /// Pushed elements that were not tasks (or had no usable processing time).
    pub skipped: u64,
    reported_dropped: u64,
}

impl ArrivalRecorder {
    /// Creates (truncates) `path`, writes the header, and returns the recorder and the hook to
    /// register on `queue`.
    pub fn create(path: &Path, queue: &str) -> std::io::Result<(ArrivalRecorder, Arc<ArrivalHook>)> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "timestamp,processing_s")?;
        out.flush()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let hook = Arc::new(ArrivalHook {
            queue: queue.as_bytes().to_vec(),
            tx,
            dropped: dropped.clone(),
        });
        let recorder = ArrivalRecorder {
            path: path.to_path_buf(),
            rx,
            out,
            dropped,
            origin_s: 0.0,
            last_flush: Instant::now(),
            last_t: 0.0,
            recorded: 0,
            skipped: 0,
            reported_dropped: 0,
        };
        Ok((recorder, hook))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Timestamps count from the farm's clock: `origin_s` workload seconds before the node
    /// clock's 0.
    pub fn set_origin(&mut self, origin_s: f64) {
        self.origin_s = origin_s;
    }

    /// Writes every arrival waiting in the channel; flushes if a second has passed.
    pub fn drain(&mut self, clock: &FarmClock) -> std::io::Result<()> {
        while let Ok((at, raw)) = self.rx.try_recv() {
            let processing_s = serde_json::from_slice::<functions::messages::Task>(&raw)
                .ok()
                .map(|t| clock.workload_s(t.task_processing_time_simulated))
                .filter(|p| *p > 0.0 && *p <= workload::limits::MAX_PROCESSING_S);
            let Some(processing_s) = processing_s else {
                self.skipped += 1;
                continue;
            };
            // Non-decreasing, as a trace must be (a time-scale change re-bases the clock).
            let t = (self.origin_s + clock.at(at)).max(self.last_t).max(0.0);
            self.last_t = t;
            writeln!(self.out, "{t:.6},{processing_s:.6}")?;
            self.recorded += 1;
        }
        let dropped = self.dropped.load(Relaxed);
        if dropped > self.reported_dropped {
            tracing::warn!(
                dropped = dropped - self.reported_dropped,
                path = %self.path.display(),
                "arrivals came faster than the recording could keep up; some are missing from the trace"
            );
            self.reported_dropped = dropped;
        }
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.last_flush = Instant::now();
        self.out.flush()
    }

    /// Everything left, written and flushed (at shutdown).
    pub fn finish(&mut self, clock: &FarmClock) -> std::io::Result<()> {
        self.drain(clock)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(processing_s: f64) -> Bytes {
        Bytes::from(functions::runtime::json(&functions::messages::Task {
            task_id: "t".into(),
            task_gen_timestamp: 0.0,
            task_application: "image_processing".into(),
            task_priority: "normal".into(),
            task_data_size: 10,
            task_processing_time_simulated: processing_s,
            task_expected_duration: processing_s,
            task_deadline: 2.0 * processing_s,
            task_emit_timestamp: 0.0,
            task_emit_time: 0.0,
        }))
    }

    #[test]
    fn records_pushed_tasks_in_workload_time_as_a_trace_eval_reads() {
        let path = std::env::temp_dir().join(format!("autoscale-record-{}.csv", std::process::id()));
        let (mut rec, hook) = ArrivalRecorder::create(&path, "worker_queue").unwrap();
        rec.set_origin(100.0);
        let clock = FarmClock::new(0.5);
        hook.on_elements(0, b"worker_queue", true, &[task(0.25), task(1.0)]);
        // Not arrivals: another queue, another database, a re-queue, a non-task.
        hook.on_elements(0, b"result_queue", true, &[task(1.0)]);
        hook.on_elements(1, b"worker_queue", true, &[task(1.0)]);
        hook.on_elements(0, b"worker_queue", false, &[task(1.0)]);
        hook.on_elements(0, b"worker_queue", true, &[Bytes::from_static(b"hello")]);
        rec.finish(&clock).unwrap();
        assert_eq!((rec.recorded, rec.skipped), (2, 1));
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], "timestamp,processing_s");
        assert_eq!(rows.len(), 3, "{text}");
        // Processing times in workload seconds (time scale 0.5 doubles them).
        assert!(
            rows[1].ends_with(",0.500000") && rows[2].ends_with(",2.000000"),
            "{text}"
        );
        let t: f64 = rows[1].split(',').next().unwrap().parse().unwrap();
        assert!((100.0..101.0).contains(&t), "{t}");
        // What `eval --trace` reads.
        let trace = workload::load_trace(&text, workload::Replay::Exact).unwrap();
        assert_eq!(trace.tasks, 2);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let path = std::env::temp_dir().join(format!("autoscale-record-full-{}.csv", std::process::id()));
        let (mut rec, hook) = ArrivalRecorder::create(&path, "worker_queue").unwrap();
        let many: Vec<Bytes> = (0..CHANNEL_CAPACITY + 10).map(|_| task(1.0)).collect();
        hook.on_elements(0, b"worker_queue", true, &many);
        assert_eq!(hook.dropped.load(Relaxed), 10);
        rec.finish(&FarmClock::new(1.0)).unwrap();
        assert_eq!(rec.recorded, CHANNEL_CAPACITY as u64);
        std::fs::remove_file(&path).ok();
    }
}
