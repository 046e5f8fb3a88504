//! The JSON messages of the farm, with the original system's field names.
//!
//! Timestamps are seconds since the run's `program_start_time`. New fields may be added over
//! the original's; none is renamed or removed, so original Python functions and ours can share
//! a broker.

use serde::{Deserialize, Serialize};
use workload::{check_consistency, check_load, check_phase, phase_load, Pattern, Phase, WorkloadError};

/// A phase configuration, pushed to `input_queue` for the emitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseConfigMsg {
    #[serde(rename = "type")]
    pub kind: String,
    pub phase_number: u32,
    pub phase_name: String,
    /// Tasks per minute at multiplier 1.
    pub base_rate: f64,
    pub phase_multiplier: f64,
    /// Seconds (unscaled).
    pub phase_duration: f64,
    /// Seconds (unscaled).
    pub window_duration: f64,
    pub target_tasks: usize,
    /// `steady`, `oscillation_slow`, `oscillation_fast` (original) or `burst` (ours).
    pub phase_pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oscillation_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oscillation_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oscillation_cycles: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_seed: Option<u64>,
    /// Ours: burst spikes (height multiplier, width seconds, count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_height: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_width: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_count: Option<u32>,
    /// Ours: a recorded trace's relative rate per second, and its exact task count if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_weights: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_total: Option<usize>,
    /// Ours: the phase's whole pattern as a workload file writes it, for the shapes the fields
    /// above cannot carry (step, ramp, diurnal, mmpp, noisy, counts, arrivals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
}

impl PhaseConfigMsg {
    /// The message for `phase`, the `number`-th phase of a run (1-based, as the original).
    pub fn from_phase(phase: &Phase, number: u32, base_rate: f64, window_s: f64, seed: u64) -> Self {
        let mut msg = PhaseConfigMsg {
            kind: "phase_config".into(),
            phase_number: number,
            phase_name: phase.name.clone(),
            base_rate,
            phase_multiplier: phase.multiplier,
            phase_duration: phase.duration_s,
            window_duration: window_s,
            target_tasks: phase.target_tasks(base_rate),
            phase_pattern: "steady".into(),
            oscillation_min: None,
            oscillation_max: None,
            oscillation_cycles: None,
            task_seed: Some(seed),
            burst_height: None,
            burst_width: None,
            burst_count: None,
            trace_weights: None,
            trace_total: None,
            pattern: None,
        };
        match &phase.pattern {
            Pattern::Steady => {}
            Pattern::Oscillation { min, max, cycles } => {
                msg.phase_pattern = if *cycles > 1.0 {
                    "oscillation_fast"
                } else {
                    "oscillation_slow"
                }
                .into();
                msg.oscillation_min = Some(*min);
                msg.oscillation_max = Some(*max);
                msg.oscillation_cycles = Some(*cycles);
            }
            Pattern::Burst {
                height,
                width_s,
                count,
            } => {
                msg.phase_pattern = "burst".into();
                msg.burst_height = Some(*height);
                msg.burst_width = Some(*width_s);
                msg.burst_count = Some(*count);
            }
            Pattern::Trace { weights, total } => {
                msg.phase_pattern = "trace".into();
                msg.trace_weights = Some(weights.clone());
                msg.trace_total = *total;
            }
            other => {
                msg.phase_pattern = other.kind().into();
                msg.pattern = Some(other.clone());
            }
        }
        msg
    }

    /// The phase this message describes, if the emitter can honour it: every number finite
    /// and in range, and the phase within the generator's limits (tasks, windows); the error
    /// names the message's field.
    pub fn to_phase(&self) -> Result<Phase, PhaseConfigError> {
        if self.kind != "phase_config" {
            return Err(PhaseConfigError::WrongType(self.kind.clone()));
        }
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(WorkloadError::OutOfRange {
                    field: field.into(),
                    allowed: "a positive number".into(),
                    value: v.to_string(),
                })
            }
        };
        positive("base_rate", self.base_rate)?;
        positive("window_duration", self.window_duration)?;
        let pattern = match self.phase_pattern.as_str() {
            _ if self.pattern.is_some() => match &self.pattern {
                Some(p) if p.kind() == self.phase_pattern => p.clone(),
                p => {
                    return Err(PhaseConfigError::Invalid(WorkloadError::Inconsistent {
                        field: "pattern".into(),
                        reason: format!(
                            "its kind {:?} differs from phase_pattern {:?}",
                            p.as_ref().map_or("", |p| p.kind()),
                            self.phase_pattern
                        ),
                    }))
                }
            },
            "steady" => Pattern::Steady,
            p if p.starts_with("oscillation") => Pattern::Oscillation {
                min: self.oscillation_min.unwrap_or(0.5),
                max: self.oscillation_max.unwrap_or(1.5),
                cycles: self
                    .oscillation_cycles
                    .unwrap_or(if p == "oscillation_fast" { 4.0 } else { 1.0 }),
            },
            "burst" => Pattern::Burst {
                height: self.burst_height.unwrap_or(3.0),
                width_s: self.burst_width.unwrap_or(2.0),
                count: self.burst_count.unwrap_or(3),
            },
            "trace" => Pattern::Trace {
                weights: self.trace_weights.clone().ok_or(PhaseConfigError::MissingTrace)?,
                total: self.trace_total,
            },
            other => return Err(PhaseConfigError::UnknownPattern(other.into())),
        };
        let phase = Phase {
            name: self.phase_name.clone(),
            multiplier: self.phase_multiplier,
            duration_s: self.phase_duration,
            pattern,
        };
        check_phase(&phase, &message_field)?;
        let (tasks, windows) = phase_load(&phase, self.base_rate, self.window_duration);
        let what = format!("phase {} ({:?})", self.phase_number, self.phase_name);
        check_load(&what, tasks, windows)?;
        check_consistency(&phase, &message_field)?;
        // The count the sender expects must be one the emitter could produce.
        check_load(&format!("target_tasks of {what}"), self.target_tasks as f64, 1.0)?;
        Ok(phase)
    }
}

/// A phase parameter's field name in a phase-config message.
fn message_field(param: &str) -> String {
    let (base, index) = match param.find('[') {
        Some(i) => param.split_at(i),
        None => (param, ""),
    };
    let field = match base {
        "duration_s" => "phase_duration",
        "multiplier" => "phase_multiplier",
        "min" => "oscillation_min",
        "max" => "oscillation_max",
        "cycles" => "oscillation_cycles",
        "height" => "burst_height",
        "width_s" => "burst_width",
        "weights" => "trace_weights",
        "total" => "trace_total",
        other => other,
    };
    format!("{field}{index}")
}

/// Why the emitter refuses a phase-config message (it is dead-lettered with this text).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PhaseConfigError {
    #[error("type is {0:?}, expected \"phase_config\"")]
    WrongType(String),
    #[error("unknown phase_pattern {0:?}")]
    UnknownPattern(String),
    #[error("a trace phase needs trace_weights")]
    MissingTrace,
    #[error(transparent)]
    Invalid(#[from] WorkloadError),
}

/// A task in `worker_queue`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub task_gen_timestamp: f64,
    pub task_application: String,
    pub task_priority: String,
    /// Image side in pixels.
    pub task_data_size: u32,
    pub task_processing_time_simulated: f64,
    pub task_expected_duration: f64,
    /// Budget in seconds from generation to collection.
    pub task_deadline: f64,
    pub task_emit_timestamp: f64,
    /// Emit delay: `task_emit_timestamp − task_gen_timestamp`.
    pub task_emit_time: f64,
}

/// A worker's result in `result_queue`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task_id: String,
    pub task_application: String,
    pub task_priority: String,
    pub task_gen_timestamp: f64,
    pub task_deadline: f64,
    pub task_emit_timestamp: f64,
    pub task_emit_time: f64,
    pub task_work_timestamp: f64,
    /// `task_work_timestamp − task_emit_timestamp`.
    pub task_work_time: f64,
    pub processing_time: f64,
    pub image_size: u32,
    pub status: String,
    /// Ours: which worker processed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

/// The collector's record in `output_queue`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub task_id: String,
    pub task_application: String,
    pub task_gen_timestamp: f64,
    pub task_emit_timestamp: f64,
    pub task_emit_time: f64,
    pub task_work_timestamp: f64,
    pub task_work_time: f64,
    pub task_deadline: f64,
    pub task_collect_timestamp: f64,
    /// `task_collect_timestamp − task_work_timestamp`.
    pub task_collect_time: f64,
    /// `task_collect_timestamp − task_gen_timestamp`.
    pub task_completion_time: f64,
    /// Deadline met: `task_deadline ≥ task_completion_time`.
    #[serde(rename = "task_QoS")]
    pub task_qos: bool,
    pub task_result_data: String,
    pub task_output_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_round_trips_the_original_shape() {
        let sample = r#"{"task_id":"6f1c2b1e-8d1e-4a53-9b7e-0c2f7f6f8e11","task_gen_timestamp":12.5,
            "task_application":"image_processing","task_priority":"normal","task_data_size":2048,
            "task_processing_time_simulated":0.7188,"task_expected_duration":0.7188,"task_deadline":1.4376,
            "task_emit_timestamp":12.51,"task_emit_time":0.01}"#;
        let task: Task = serde_json::from_str(sample).unwrap();
        assert_eq!(task.task_data_size, 2048);
        let back: serde_json::Value = serde_json::to_value(&task).unwrap();
        let orig: serde_json::Value = serde_json::from_str(sample).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn output_record_uses_task_qos_capitalised() {
        let sample = r#"{"task_id":"a","task_application":"image_processing","task_gen_timestamp":1.0,
            "task_emit_timestamp":1.0,"task_emit_time":0.0,"task_work_timestamp":1.5,"task_work_time":0.5,
            "task_deadline":2.0,"task_collect_timestamp":2.6,"task_collect_time":1.1,
            "task_completion_time":1.6,"task_QoS":true,"task_result_data":"processed","task_output_size":1024}"#;
        let rec: OutputRecord = serde_json::from_str(sample).unwrap();
        assert!(rec.task_qos);
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(v, serde_json::from_str::<serde_json::Value>(sample).unwrap());
    }

    #[test]
    fn phase_config_round_trip_and_validation() {
        let sample = r#"{"type":"phase_config","phase_number":3,"phase_name":"Slow Oscillation","base_rate":300,
            "phase_multiplier":1.0,"phase_duration":60,"window_duration":1,"target_tasks":300,
            "phase_pattern":"oscillation_slow","oscillation_min":0.5,"oscillation_max":1.5,"oscillation_cycles":1}"#;
        let msg: PhaseConfigMsg = serde_json::from_str(sample).unwrap();
        let phase = msg.to_phase().unwrap();
        assert_eq!(phase.target_tasks(300.0), 300);
        assert!(matches!(phase.pattern, Pattern::Oscillation { cycles, .. } if cycles == 1.0));
        let bad = PhaseConfigMsg {
            phase_duration: -1.0,
            ..msg
        };
        assert!(bad.to_phase().unwrap_err().to_string().contains("phase_duration"));
    }

    #[test]
    fn phase_configs_the_emitter_cannot_honour_are_refused_with_the_field() {
        let msg = |extra: &str| -> PhaseConfigMsg {
            let text = format!(
                r#"{{"type":"phase_config","phase_number":2,"phase_name":"P","base_rate":300,
                "phase_multiplier":1.0,"phase_duration":60,"window_duration":1,"target_tasks":300{extra}}}"#
            );
            serde_json::from_str(&text).unwrap()
        };
        let steady = || msg(r#","phase_pattern":"steady""#);
        assert!(steady().to_phase().is_ok());
        let refused = |m: PhaseConfigMsg| m.to_phase().unwrap_err().to_string();
        // A billion tasks a minute; 10^12 tasks declared; a phase of 10^12 seconds.
        let e = refused(PhaseConfigMsg {
            base_rate: 1e9,
            ..steady()
        });
        assert_eq!(
            e,
            "phase 2 (\"P\") would generate 1000000000 tasks; at most 1000000 are allowed (lower the \
             base rate, the multipliers or the durations)"
        );
        let e = refused(PhaseConfigMsg {
            target_tasks: 1_000_000_000_000,
            ..steady()
        });
        assert!(
            e.starts_with("target_tasks of phase 2 (\"P\") would generate 1000000000000 tasks"),
            "{e}"
        );
        let e = refused(PhaseConfigMsg {
            phase_duration: 1e12,
            ..steady()
        });
        assert!(e.starts_with("phase_duration must be"), "{e}");
        let e = refused(PhaseConfigMsg {
            window_duration: 1e-6,
            ..steady()
        });
        assert!(e.contains("60000000 rate windows; at most 1000000"), "{e}");
        let e = refused(PhaseConfigMsg {
            base_rate: -3.0,
            ..steady()
        });
        assert_eq!(e, "base_rate must be a positive number, got -3");
        let e = refused(msg(
            r#","phase_pattern":"oscillation_slow","oscillation_min":2,"oscillation_max":1"#,
        ));
        assert!(
            e.starts_with("oscillation_max must be at least the minimum (2)"),
            "{e}"
        );
        let e = refused(msg(r#","phase_pattern":"trace","trace_weights":[1,2,-4]"#));
        assert!(
            e.starts_with("trace_weights[2] must be a non-negative number"),
            "{e}"
        );
        let e = refused(msg(
            r#","phase_pattern":"trace","trace_weights":[1],"trace_total":2000000"#,
        ));
        assert!(e.contains("would generate 2000000 tasks"), "{e}");
        let e = refused(msg(r#","phase_pattern":"burst","burst_width":-1"#));
        assert!(e.starts_with("burst_width must be"), "{e}");
        assert_eq!(
            refused(msg(r#","phase_pattern":"zigzag""#)),
            "unknown phase_pattern \"zigzag\""
        );
    }

    #[test]
    fn newer_shapes_travel_whole_and_inconsistent_traces_are_refused() {
        let phase = |pattern: Pattern| Phase {
            name: "P".into(),
            multiplier: 1.0,
            duration_s: 4.0,
            pattern,
        };
        for pattern in [
            Pattern::Step {
                before: 0.5,
                after: 2.0,
                at_s: 1.0,
            },
            Pattern::Mmpp {
                low: 0.1,
                high: 3.0,
                mean_low_s: 2.0,
                mean_high_s: 1.0,
            },
            Pattern::Counts {
                counts: vec![3.0, 0.0, 5.0, 1.0],
                replay: workload::Replay::Exact,
                plan: None,
            },
            Pattern::Arrivals {
                times_s: vec![0.0, 0.5, 3.2],
                processing_s: Some(vec![1.0, 2.0, 0.5]),
                size_px: None,
                replay: workload::Replay::Exact,
                plan: None,
            },
        ] {
            let msg = PhaseConfigMsg::from_phase(&phase(pattern.clone()), 1, 300.0, 1.0, 9);
            assert_eq!(msg.phase_pattern, pattern.kind());
            let sent: PhaseConfigMsg = serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
            assert_eq!(sent.to_phase().unwrap(), phase(pattern));
        }
        // The legacy shapes keep their legacy fields (no pattern object).
        let steady = PhaseConfigMsg::from_phase(&phase(Pattern::Steady), 1, 300.0, 1.0, 9);
        assert!(steady.pattern.is_none() && !serde_json::to_string(&steady).unwrap().contains("\"pattern\""));
        let mut msg =
            PhaseConfigMsg::from_phase(&phase(Pattern::Ramp { from: 0.0, to: 1.0 }), 1, 300.0, 1.0, 9);
        msg.phase_pattern = "step".into();
        let e = msg.to_phase().unwrap_err().to_string();
        assert_eq!(
            e,
            "pattern: its kind \"ramp\" differs from phase_pattern \"step\""
        );
        // A trace whose count would silently come from the base rate is refused.
        let mut msg = PhaseConfigMsg::from_phase(&phase(Pattern::Steady), 1, 300.0, 1.0, 9);
        msg.phase_pattern = "trace".into();
        msg.trace_weights = Some(vec![1.0; 4]);
        let e = msg.to_phase().unwrap_err().to_string();
        assert!(e.starts_with("trace_total: a trace needs its task count"), "{e}");
    }
}
