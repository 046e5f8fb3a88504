//! The job's plan, read from the broker: whoever drives the farm pushes phase configurations to
//! `input_queue` (rates, shapes, durations, order), and an emitter records when it started the
//! phase it works through. From these the node knows the planned arrival rate of the coming
//! seconds — a load calendar — without being told anything else. A controller may publish a
//! plan at `autoscale:plan` instead ([`PublishedPlan`]).
//!
//! A plan is rates and shapes, never recorded arrivals: a phase's calendar is what
//! [`workload::RatePlan`] knows of it (a stochastic shape's or a trace's mean).

use crate::requests::PublishedPlan;
use agent::observe::Outlook;
use bytes::Bytes;
use functions::messages::PhaseConfigMsg;
use std::collections::HashMap;
use std::sync::Arc;
use workload::{RatePlan, WorkloadConfig};

/// Phase configs read from `input_queue` per decision: the next ones (a job has a handful).
pub const MAX_QUEUED_PHASES: usize = 64;

/// What the broker holds about the job's plan, read at a decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanInputs {
    /// `autoscale:plan`, if set.
    pub published: Option<Bytes>,
    /// The phases emitters are working through: each one's config and progress record.
    pub running: Vec<(Bytes, Option<Bytes>)>,
    /// Phase configs waiting in `input_queue`, the next first (at most [`MAX_QUEUED_PHASES`]).
    pub queued: Vec<Bytes>,
    /// Connected emitters working on no phase (each takes the next one).
    pub idle_emitters: usize,
    /// The farm's clock now: wall seconds since `program_start_time`.
    pub since_start_s: f64,
}

/// Where a plan came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanSource {
    /// Phase configs in `input_queue` and the emitters' processing lists.
    InputQueue,
    /// A controller's `autoscale:plan`.
    Published,
}

impl PlanSource {
    pub fn describe(self) -> &'static str {
        match self {
            PlanSource::InputQueue => "input_queue",
            PlanSource::Published => crate::requests::PLAN,
        }
    }
}

/// One phase of the plan, placed on the node's clock (workload seconds).
#[derive(Clone, Debug)]
struct Segment {
    start_s: f64,
    duration_s: f64,
    rates: Arc<RatePlan>,
}

impl Segment {
    fn end_s(&self) -> f64 {
        self.start_s + self.duration_s
    }

    fn rate_at(&self, t: f64) -> f64 {
        if t < self.start_s || t >= self.end_s() {
            0.0
        } else {
            self.rates.rate_at(t - self.start_s)
        }
    }

    fn peak_between(&self, from: f64, to: f64) -> f64 {
        let (from, to) = (from.max(self.start_s), to.min(self.end_s()));
        if to < from {
            0.0
        } else {
            self.rates.peak_between(from - self.start_s, to - self.start_s)
        }
    }
}

/// The job's plan on the node's clock: one lane of consecutive phases per emitter.
#[derive(Clone, Debug)]
pub struct JobPlan {
    lanes: Vec<Vec<Segment>>,
    pub source: PlanSource,
}

impl JobPlan {
    /// The phases it holds.
    pub fn phases(&self) -> usize {
        self.lanes.iter().map(Vec::len).sum()
    }

    /// When its last phase ends (workload seconds).
    pub fn end_s(&self) -> f64 {
        self.lanes
            .iter()
            .flatten()
            .map(Segment::end_s)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The planned rates at `now_s`, looking `horizon_s` ahead (as [`agent::observe::Calendar`]
    /// does: one decision period plus a worker's start-up). Lanes run side by side, so their
    /// rates add up; within a lane the phases follow one another.
    pub fn outlook(&self, now_s: f64, horizon_s: f64) -> Outlook {
        let mut out = Outlook::default();
        for lane in &self.lanes {
            out.rate_now += lane.iter().map(|s| s.rate_at(now_s)).sum::<f64>();
            out.rate_peak += lane
                .iter()
                .map(|s| s.peak_between(now_s, now_s + horizon_s))
                .fold(0.0, f64::max);
        }
        out
    }
}

/// Builds [`JobPlan`]s from [`PlanInputs`], decision after decision, parsing each distinct
/// phase config once.
#[derive(Default)]
pub struct PlanBook {
    /// Phase configs seen at the last decision: their rates and duration (`None`: not a
    /// phase the emitter can run, which it dead-letters).
    phases: HashMap<Bytes, Option<(Arc<RatePlan>, f64)>>,
    /// The last `autoscale:plan` seen and what it held.
    published: Option<(Bytes, Result<f64, String>)>,
}

impl PlanBook {
    /// The plan `inputs` describe, on a clock that reads `now_s` (workload seconds) now and
    /// runs `time_scale` wall seconds per workload second. `None` when nothing is planned from
    /// now on. A published plan wins over `input_queue`.
    pub fn build(&mut self, inputs: &PlanInputs, now_s: f64, time_scale: f64) -> Option<JobPlan> {
        let mut seen: HashMap<Bytes, Option<(Arc<RatePlan>, f64)>> = HashMap::new();
        // Farm-clock seconds (wall) to the node's clock, relative to now.
        let at = |farm_s: f64| now_s - (inputs.since_start_s - farm_s) / time_scale;
        let plan = match self.published_plan(inputs, &mut seen) {
            Some((start_s, phases)) => {
                let mut lane = Vec::new();
                let mut t = at(start_s);
                for (rates, duration_s) in phases {
                    lane.push(Segment {
                        start_s: t,
                        duration_s,
                        rates,
                    });
                    t += duration_s;
                }
                JobPlan {
                    lanes: vec![lane],
                    source: PlanSource::Published,
                }
            }
            None => {
                // The emitters' lanes: a running phase from its recorded start (or now, if
                // the record is not written yet), an idle emitter free now.
                let mut lanes: Vec<Vec<Segment>> = Vec::new();
                for (config, progress) in &inputs.running {
                    let Some((rates, duration_s)) = self.phase(config, &mut seen) else {
                        continue;
                    };
                    let started = progress
                        .as_ref()
                        .and_then(|p| serde_json::from_slice::<functions::emitter::Progress>(p).ok())
                        .map_or(now_s, |p| at(p.started_at).min(now_s));
                    lanes.push(vec![Segment {
                        start_s: started,
                        duration_s,
                        rates,
                    }]);
                }
                lanes.extend((0..inputs.idle_emitters).map(|_| Vec::new()));
                // Queued phases go to whichever emitter frees first; without one, nobody
                // will emit them and they plan nothing.
                for config in &inputs.queued {
                    let Some((rates, duration_s)) = self.phase(config, &mut seen) else {
                        continue;
                    };
                    let Some(lane) = lanes.iter_mut().min_by(|a, b| {
                        let free = |l: &Vec<Segment>| l.last().map_or(now_s, |s| s.end_s().max(now_s));
                        free(a).total_cmp(&free(b))
                    }) else {
                        break;
                    };
                    let start_s = lane.last().map_or(now_s, |s| s.end_s().max(now_s));
                    lane.push(Segment {
                        start_s,
                        duration_s,
                        rates,
                    });
                }
                lanes.retain(|l| !l.is_empty());
                JobPlan {
                    lanes,
                    source: PlanSource::InputQueue,
                }
            }
        };
        self.phases = seen;
        (plan.phases() > 0 && plan.end_s() > now_s).then_some(plan)
    }

    /// The published plan's start and phases, if `autoscale:plan` holds a valid one (an
    /// invalid one is reported once and ignored).
    #[allow(clippy::type_complexity)]
    fn published_plan(
        &mut self,
        inputs: &PlanInputs,
        seen: &mut HashMap<Bytes, Option<(Arc<RatePlan>, f64)>>,
    ) -> Option<(f64, Vec<(Arc<RatePlan>, f64)>)> {
        let raw = inputs.published.as_ref()?;
        let parsed: Result<PublishedPlan, String> = serde_json::from_slice(raw).map_err(|e| e.to_string());
        let mut phases = Vec::new();
        let checked = parsed.and_then(|plan| {
            if !plan.start_s.is_finite() {
                return Err("start_s must be a number of seconds".into());
            }
            for (i, msg) in plan.phases.iter().enumerate() {
                let raw = Bytes::from(functions::runtime::json(msg));
                let phase = self
                    .phase(&raw, seen)
                    .ok_or_else(|| format!("phases[{i}] is not a phase the emitter can run"))?;
                phases.push(phase);
            }
            if phases.is_empty() {
                return Err("it has no phases".into());
            }
            Ok(plan.start_s)
        });
        let fresh = self.published.as_ref().is_none_or(|(r, _)| r != raw);
        if fresh {
            match &checked {
                Ok(_) => tracing::info!(
                    key = crate::requests::PLAN,
                    phases = phases.len(),
                    "read a published plan"
                ),
                Err(e) => {
                    tracing::warn!(key = crate::requests::PLAN, error = %e, "ignoring the published plan")
                }
            }
            self.published = Some((raw.clone(), checked.clone()));
        }
        checked.ok().map(|start| (start, phases))
    }

    /// The rates and duration of one phase config (parsed once while it stays in view).
    fn phase(
        &self,
        raw: &Bytes,
        seen: &mut HashMap<Bytes, Option<(Arc<RatePlan>, f64)>>,
    ) -> Option<(Arc<RatePlan>, f64)> {
        if let Some(known) = seen.get(raw) {
            return known.clone();
        }
        let parsed = match self.phases.get(raw) {
            Some(known) => known.clone(),
            None => phase_rates(raw),
        };
        seen.insert(raw.clone(), parsed.clone());
        parsed
    }
}

/// A phase config's planned rates (workload seconds from its start) and duration, as its
/// emitter will run it.
fn phase_rates(raw: &[u8]) -> Option<(Arc<RatePlan>, f64)> {
    let msg: PhaseConfigMsg = serde_json::from_slice(raw).ok()?;
    let phase = msg.to_phase().ok()?;
    let duration_s = phase.duration_s;
    let config = WorkloadConfig {
        base_rate_per_min: msg.base_rate,
        window_s: msg.window_duration,
        phases: vec![phase],
        shuffle_phases: false,
        time_scale: 1.0,
        ..WorkloadConfig::default()
    };
    Some((Arc::new(RatePlan::new(&config, 0)), duration_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default workload's phase configs (Steady Low 1.5/s, Steady High 7.5/s, two
    /// oscillations around 5/s; 60 s each).
    fn phases() -> Vec<Bytes> {
        functions::emitter::phase_messages(&WorkloadConfig::default(), 1)
            .iter()
            .map(|m| Bytes::from(functions::runtime::json(m)))
            .collect()
    }

    fn progress(started_at: f64) -> Bytes {
        Bytes::from(functions::runtime::json(&functions::emitter::Progress {
            seed: 1,
            started_at,
            emitted: 3,
        }))
    }

    #[test]
    fn queued_phases_follow_the_running_one_on_the_node_clock() {
        let p = phases();
        let mut book = PlanBook::default();
        // Steady Low started 20 s of farm clock ago, at time scale 0.5: 40 workload seconds.
        let inputs = PlanInputs {
            running: vec![(p[0].clone(), Some(progress(30.0)))],
            queued: p[1..].to_vec(),
            since_start_s: 50.0,
            ..PlanInputs::default()
        };
        let plan = book.build(&inputs, 100.0, 0.5).expect("a plan");
        assert_eq!(plan.source, PlanSource::InputQueue);
        assert_eq!(plan.phases(), 4);
        // Steady Low runs 60.0 → 120.0 on the node's clock, Steady High 120 → 180.
        assert!((plan.end_s() - 300.0).abs() < 1e-9, "{}", plan.end_s());
        let o = plan.outlook(100.0, 10.0);
        assert!(
            (o.rate_now - 1.5).abs() < 1e-9 && (o.rate_peak - 1.5).abs() < 1e-9,
            "{o:?}"
        );
        let o = plan.outlook(115.0, 10.0);
        assert!(
            (o.rate_now - 1.5).abs() < 1e-9 && (o.rate_peak - 7.5).abs() < 1e-9,
            "{o:?}"
        );
        assert!((plan.outlook(150.0, 1.0).rate_now - 7.5).abs() < 1e-9);
        assert_eq!(plan.outlook(400.0, 10.0), Outlook::default());
        // Parsed once: the same inputs reuse the cached rates.
        assert_eq!(book.phases.len(), 4);
        assert!(book.build(&inputs, 100.0, 0.5).is_some());
    }

    #[test]
    fn phases_nobody_will_emit_plan_nothing() {
        let p = phases();
        let mut book = PlanBook::default();
        let waiting = PlanInputs {
            queued: p.clone(),
            ..PlanInputs::default()
        };
        assert!(book.build(&waiting, 0.0, 1.0).is_none(), "no emitter connected");
        // An idle emitter takes them now.
        let ready = PlanInputs {
            idle_emitters: 1,
            ..waiting
        };
        let plan = book.build(&ready, 10.0, 1.0).expect("a plan");
        assert!((plan.outlook(10.0, 1.0).rate_now - 1.5).abs() < 1e-9);
        assert!((plan.end_s() - 250.0).abs() < 1e-9);
        // Two emitters share the phases and their rates add up.
        let two = PlanInputs {
            idle_emitters: 2,
            ..ready.clone()
        };
        let plan = book.build(&two, 10.0, 1.0).expect("a plan");
        assert!((plan.outlook(10.0, 1.0).rate_now - 9.0).abs() < 1e-9);
        // A config the emitter cannot run is left out; a finished job plans nothing.
        let junk = PlanInputs {
            queued: vec![Bytes::from_static(br#"{"type":"phase_config"}"#)],
            idle_emitters: 1,
            ..PlanInputs::default()
        };
        assert!(book.build(&junk, 0.0, 1.0).is_none());
        let done = PlanInputs {
            running: vec![(p[0].clone(), Some(progress(0.0)))],
            since_start_s: 100.0,
            ..PlanInputs::default()
        };
        assert!(
            book.build(&done, 100.0, 1.0).is_none(),
            "its only phase ended at 60 s"
        );
    }

    #[test]
    fn a_published_plan_wins_and_a_bad_one_is_ignored() {
        let msgs = functions::emitter::phase_messages(&WorkloadConfig::default(), 1);
        let mut book = PlanBook::default();
        let published = PublishedPlan {
            start_s: 5.0,
            phases: msgs[1..2].to_vec(),
        };
        let inputs = PlanInputs {
            published: Some(Bytes::from(serde_json::to_vec(&published).unwrap())),
            queued: phases(),
            idle_emitters: 1,
            since_start_s: 10.0,
            ..PlanInputs::default()
        };
        let plan = book.build(&inputs, 10.0, 1.0).expect("a plan");
        assert_eq!((plan.source, plan.phases()), (PlanSource::Published, 1));
        assert!((plan.outlook(10.0, 1.0).rate_now - 7.5).abs() < 1e-9);
        assert!((plan.end_s() - 65.0).abs() < 1e-9);
        let bad = PlanInputs {
            published: Some(Bytes::from_static(br#"{"start_s": 1, "phases": []}"#)),
            ..inputs
        };
        let plan = book.build(&bad, 10.0, 1.0).expect("the input queue's plan");
        assert_eq!((plan.source, plan.phases()), (PlanSource::InputQueue, 4));
    }
}
