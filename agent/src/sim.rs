//! A discrete-event simulator of the farm in virtual time: arrivals from the shared workload
//! generator, one FIFO queue, workers with start-up delay, graceful scale-down.

use crate::observe::{FarmMetrics, Metrics};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use workload::TaskSpec;

/// Farm and control settings. Defaults are the original controller's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub decision_period_s: f64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub initial_workers: u32,
    /// Mean time from "scale up" to a worker taking tasks (≈0.1 s local processes, ≈5 s
    /// OpenFaaS cold starts).
    pub startup_delay_s: f64,
    /// Uniform jitter on the start-up delay, as a fraction of it (0.2 = ±20 %).
    pub startup_jitter: f64,
    /// After the last arrival, the run ends when the farm is empty or this many seconds pass;
    /// tasks still unfinished then count as missed.
    pub drain_s: f64,
    /// Apply the node's scaling rules ([`crate::scaling_rules::Limits::node`]: idle farm held,
    /// scale-down cooldown and hysteresis) to every decision, as `serve` and `run` do; off, a
    /// policy's wish is only clamped to the bounds.
    pub node_rules: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            decision_period_s: 8.0,
            min_workers: 1,
            max_workers: 32,
            initial_workers: 12,
            startup_delay_s: 5.0,
            startup_jitter: 0.2,
            drain_s: 60.0,
            node_rules: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Worker {
    Starting,
    Idle,
    Busy,
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Arrival(usize),
    Ready(usize),
    Done { worker: usize, task: usize },
}

#[derive(Clone, PartialEq)]
struct Scheduled {
    at: f64,
    seq: u64,
    event: Event,
}

impl Eq for Scheduled {}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Earliest first (BinaryHeap is a max-heap); ties in insertion order.
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The farm in virtual time. Cloning it forks the future: the clone replays the same random
/// draws, which is what the clairvoyant `mpc-oracle` uses to try decisions.
#[derive(Clone)]
pub struct Simulator {
    config: SimConfig,
    tasks: Vec<TaskSpec>,
    rng: ChaCha8Rng,
    now: f64,
    seq: u64,
    events: BinaryHeap<Scheduled>,
    queue: VecDeque<usize>,
    workers: Vec<Worker>,
    /// SCALE_DOWN requests not yet taken by a worker.
    pending_scale_down: u32,
    // Cumulative counters, as the broker and collector keep them.
    pushed: u64,
    popped: u64,
    completed: u64,
    qos_met: u64,
    completion_sum: f64,
    window_completion_max: f64,
    completion_times: Vec<f64>,
    worker_seconds: f64,
    last_accounting: f64,
    max_workers_seen: u32,
    scaling_actions: u32,
}

impl Simulator {
    /// A farm with `config.initial_workers` ready workers and `tasks` (in arrival order).
    pub fn new(config: SimConfig, tasks: Vec<TaskSpec>, seed: u64) -> Simulator {
        let mut sim = Simulator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0.0,
            seq: 0,
            events: BinaryHeap::new(),
            queue: VecDeque::new(),
            workers: Vec::new(),
            pending_scale_down: 0,
            pushed: 0,
            popped: 0,
            completed: 0,
            qos_met: 0,
            completion_sum: 0.0,
            window_completion_max: 0.0,
            completion_times: Vec::with_capacity(tasks.len()),
            worker_seconds: 0.0,
            last_accounting: 0.0,
            max_workers_seen: 0,
            scaling_actions: 0,
            tasks,
            config,
        };
        let initial = sim
            .config
            .initial_workers
            .clamp(sim.config.min_workers, sim.config.max_workers);
        sim.workers = vec![Worker::Idle; initial as usize];
        sim.max_workers_seen = initial;
        if !sim.tasks.is_empty() {
            let first = sim.tasks[0].arrival_s;
            sim.schedule(first, Event::Arrival(0));
        }
        sim
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn now(&self) -> f64 {
        self.now
    }

    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    fn schedule(&mut self, at: f64, event: Event) {
        self.seq += 1;
        self.events.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    /// Workers that count against capacity and cost: starting, idle or busy.
    fn provisioned(&self) -> u32 {
        self.workers.iter().filter(|w| !matches!(w, Worker::Gone)).count() as u32
    }

    fn account(&mut self) {
        let n = self.provisioned();
        self.worker_seconds += f64::from(n) * (self.now - self.last_accounting);
        self.last_accounting = self.now;
    }

    /// Processes every event up to virtual time `t`.
    pub fn advance_to(&mut self, t: f64) {
        while let Some(next) = self.events.peek() {
            if next.at > t {
                break;
            }
            let Some(ev) = self.events.pop() else { break };
            self.now = ev.at;
            self.account();
            match ev.event {
                Event::Arrival(i) => {
                    self.queue.push_back(i);
                    self.pushed += 1;
                    if i + 1 < self.tasks.len() {
                        let at = self.tasks[i + 1].arrival_s;
                        self.schedule(at, Event::Arrival(i + 1));
                    }
                }
                Event::Ready(w) => {
                    if self.workers[w] == Worker::Starting {
                        self.workers[w] = Worker::Idle;
                        self.take_scale_down(w);
                    }
                }
                Event::Done { worker, task } => {
                    let t = &self.tasks[task];
                    let completion = self.now - t.arrival_s;
                    self.completed += 1;
                    self.completion_sum += completion;
                    self.window_completion_max = self.window_completion_max.max(completion);
                    self.completion_times.push(completion);
                    if t.deadline_s >= completion {
                        self.qos_met += 1;
                    }
                    self.workers[worker] = Worker::Idle;
                    self.take_scale_down(worker);
                }
            }
            self.dispatch();
        }
        self.now = self.now.max(t);
        self.account();
    }

    /// An idle worker takes a pending SCALE_DOWN, if any, and leaves.
    fn take_scale_down(&mut self, w: usize) {
        if self.pending_scale_down > 0 && self.workers[w] == Worker::Idle {
            self.pending_scale_down -= 1;
            self.workers[w] = Worker::Gone;
        }
    }

    /// Idle workers take queued tasks the instant they are free.
    fn dispatch(&mut self) {
        for w in 0..self.workers.len() {
            if self.queue.is_empty() {
                return;
            }
            if self.workers[w] == Worker::Idle {
                let Some(task) = self.queue.pop_front() else {
                    return;
                };
                self.popped += 1;
                self.workers[w] = Worker::Busy;
                let done = self.now + self.tasks[task].processing_s;
                self.schedule(done, Event::Done { worker: w, task });
            }
        }
    }

    /// Asks for `target` workers (clamped to the configured bounds). Returns the target applied.
    pub fn scale_to(&mut self, target: u32) -> u32 {
        let target = target.clamp(self.config.min_workers, self.config.max_workers);
        let current = self.provisioned() - self.pending_scale_down.min(self.provisioned());
        if target > current {
            let mut add = target - current;
            // Retract pending scale-downs before starting new workers.
            let retract = add.min(self.pending_scale_down);
            self.pending_scale_down -= retract;
            add -= retract;
            for _ in 0..add {
                let jitter = 1.0 + self.config.startup_jitter * (self.rng.gen::<f64>() * 2.0 - 1.0);
                let ready = self.now + (self.config.startup_delay_s * jitter).max(0.0);
                self.workers.push(Worker::Starting);
                let w = self.workers.len() - 1;
                self.schedule(ready, Event::Ready(w));
            }
            self.scaling_actions += 1;
        } else if target < current {
            self.pending_scale_down += current - target;
            for w in 0..self.workers.len() {
                self.take_scale_down(w);
            }
            self.scaling_actions += 1;
        }
        self.max_workers_seen = self.max_workers_seen.max(self.provisioned());
        target
    }

    /// A fork of this farm whose future arrivals are `future` (arrival times after now, in
    /// order) instead of the real ones, with its own start-up jitter from `seed`: the present
    /// (queue, tasks in service, workers starting) is kept, the future is imagined.
    pub fn fork_with_future(&self, future: impl IntoIterator<Item = TaskSpec>, seed: u64) -> Simulator {
        let mut fork = self.clone();
        let arrived = self.pushed as usize;
        fork.tasks.truncate(arrived);
        fork.tasks.extend(future);
        fork.events.retain(|e| !matches!(e.event, Event::Arrival(_)));
        if let Some(next) = fork.tasks.get(arrived) {
            let at = next.arrival_s.max(self.now);
            fork.schedule(at, Event::Arrival(arrived));
        }
        fork.rng = ChaCha8Rng::seed_from_u64(seed);
        fork
    }

    /// Tasks waiting in the queue.
    pub fn queue_length(&self) -> usize {
        self.queue.len()
    }

    /// Tasks that have arrived so far.
    pub fn arrived(&self) -> u64 {
        self.pushed
    }

    /// Tasks known to miss their deadline by now: completed late, or still queued past the
    /// latest start that could meet the deadline.
    pub fn certain_misses(&self) -> u64 {
        let overdue = self
            .queue
            .iter()
            .filter(|&&i| {
                let t = &self.tasks[i];
                t.arrival_s + t.deadline_s - t.processing_s < self.now
            })
            .count() as u64;
        (self.completed - self.qos_met) + overdue
    }

    /// All tasks arrived and either all completed or the drain time ran out.
    pub fn finished(&self) -> bool {
        let last = self.tasks.last().map_or(0.0, |t| t.arrival_s);
        let all_arrived = self.pushed as usize == self.tasks.len();
        all_arrived && (self.completed as usize == self.tasks.len() || self.now >= last + self.config.drain_s)
    }

    /// The results so far (unfinished tasks count as missed).
    pub fn result(&self) -> EpisodeResult {
        let total = self.tasks.len().max(1) as f64;
        let duration = self.now.max(1e-9);
        let mut times = self.completion_times.clone();
        times.sort_by(f64::total_cmp);
        let pct = |q: f64| -> f64 {
            if times.is_empty() {
                return 0.0;
            }
            let i = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
            times[i]
        };
        let work: f64 = self.tasks.iter().map(|t| t.processing_s).sum();
        let span = self.tasks.last().map_or(1.0, |t| t.arrival_s).max(1e-9);
        EpisodeResult {
            tasks: self.tasks.len(),
            completed: self.completed as usize,
            qos: self.qos_met as f64 / total,
            mean_workers: self.worker_seconds / duration,
            max_workers: self.max_workers_seen,
            worker_seconds: self.worker_seconds,
            scaling_actions: self.scaling_actions,
            completion_p50_s: pct(0.50),
            completion_p99_s: pct(0.99),
            offered_load: work / span,
            duration_s: duration,
        }
    }
}

impl Metrics for Simulator {
    fn snapshot(&mut self) -> FarmMetrics {
        let oldest = self
            .queue
            .front()
            .map_or(0.0, |&i| self.now - self.tasks[i].arrival_s);
        let oldest_slack = self.queue.front().map_or(0.0, |&i| {
            let t = &self.tasks[i];
            t.arrival_s + t.deadline_s - t.processing_s - self.now
        });
        let queued_work: f64 = self.queue.iter().map(|&i| self.tasks[i].processing_s).sum();
        let m = FarmMetrics {
            time_s: self.now,
            queue_length: self.queue.len() as u64,
            pushed_total: self.pushed,
            popped_total: self.popped,
            oldest_age_s: oldest,
            completed_total: self.completed,
            qos_met_total: self.qos_met,
            completion_sum_s: self.completion_sum,
            completion_max_s: self.window_completion_max,
            workers_live: self
                .workers
                .iter()
                .filter(|w| matches!(w, Worker::Idle | Worker::Busy))
                .count() as u32,
            workers_busy: self.workers.iter().filter(|w| matches!(w, Worker::Busy)).count() as u32,
            workers_starting: self
                .workers
                .iter()
                .filter(|w| matches!(w, Worker::Starting))
                .count() as u32,
            oldest_slack_s: oldest_slack,
            queued_work_s: queued_work,
        };
        self.window_completion_max = 0.0;
        m
    }
}

/// How an episode went. QoS counts unfinished tasks as missed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeResult {
    pub tasks: usize,
    pub completed: usize,
    /// Fraction of all tasks that completed within their deadline.
    pub qos: f64,
    /// Worker-seconds divided by the episode's duration.
    pub mean_workers: f64,
    pub max_workers: u32,
    pub worker_seconds: f64,
    pub scaling_actions: u32,
    pub completion_p50_s: f64,
    pub completion_p99_s: f64,
    /// Σ processing time / arrival span: the least mean workers any policy can average.
    pub offered_load: f64,
    pub duration_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use workload::{Workload, WorkloadConfig};

    fn tasks(seed: u64) -> Vec<TaskSpec> {
        Workload::new(&WorkloadConfig::default(), seed).collect()
    }

    fn run_static(n: u32, seed: u64) -> EpisodeResult {
        let config = SimConfig {
            initial_workers: n,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(config, tasks(seed), seed);
        let mut t = 0.0;
        while !sim.finished() {
            t += 8.0;
            sim.advance_to(t);
            sim.scale_to(n);
        }
        sim.result()
    }

    #[test]
    fn tasks_are_conserved() {
        let mut sim = Simulator::new(
            SimConfig {
                initial_workers: 4,
                ..SimConfig::default()
            },
            tasks(1),
            1,
        );
        let mut t = 0.0;
        while !sim.finished() {
            t += 8.0;
            sim.advance_to(t);
            let m = sim.snapshot();
            // Every pushed task is queued, in service, or completed.
            let in_service = m.popped_total - m.completed_total;
            assert_eq!(m.pushed_total, m.queue_length + in_service + m.completed_total);
            assert_eq!(in_service, u64::from(m.workers_busy));
        }
        assert_eq!(sim.result().tasks, 1140);
    }

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(run_static(10, 7), run_static(10, 7));
        assert_ne!(run_static(10, 7), run_static(10, 8));
    }

    #[test]
    fn more_workers_more_qos_more_cost() {
        let few = run_static(6, 3);
        let many = run_static(20, 3);
        assert!(many.qos > few.qos, "{} vs {}", many.qos, few.qos);
        assert!(many.worker_seconds > few.worker_seconds);
        assert!((many.mean_workers - 20.0).abs() < 0.01, "{}", many.mean_workers);
        // Offered load ≈ 1140 tasks × 1.47 s / 240 s ≈ 7.
        assert!((few.offered_load - 7.0).abs() < 0.6, "{}", few.offered_load);
    }

    #[test]
    fn a_fork_with_an_imagined_future_keeps_the_present() {
        let mut sim = Simulator::new(
            SimConfig {
                initial_workers: 3,
                ..SimConfig::default()
            },
            tasks(2),
            2,
        );
        sim.advance_to(70.0);
        let imagined: Vec<TaskSpec> = (0..5)
            .map(|i| TaskSpec {
                phase: 0,
                arrival_s: 71.0 + f64::from(i),
                processing_s: 1.0,
                size_px: 2000,
                deadline_s: 2.0,
            })
            .collect();
        let mut fork = sim.fork_with_future(imagined, 9);
        assert_eq!(fork.snapshot(), sim.snapshot(), "same present");
        fork.advance_to(300.0);
        // Only the five imagined tasks arrive after 70 s, not the real ones.
        assert_eq!(fork.arrived(), sim.arrived() + 5);
        let finished = fork.snapshot();
        assert_eq!(finished.completed_total, finished.pushed_total);
        // The real farm goes on with its own future.
        sim.advance_to(300.0);
        assert_eq!(sim.arrived(), 1140);
    }

    #[test]
    fn scale_down_takes_idle_workers_first_and_scale_up_waits_for_start_up() {
        let config = SimConfig {
            initial_workers: 4,
            startup_delay_s: 5.0,
            startup_jitter: 0.0,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(config, Vec::new(), 1);
        sim.scale_to(2);
        assert_eq!(sim.snapshot().workers_live, 2, "idle workers leave at once");
        sim.scale_to(5);
        let m = sim.snapshot();
        assert_eq!((m.workers_live, m.workers_starting), (2, 3));
        sim.advance_to(4.9);
        assert_eq!(sim.snapshot().workers_starting, 3);
        sim.advance_to(5.1);
        assert_eq!(sim.snapshot().workers_live, 5);
    }
}
