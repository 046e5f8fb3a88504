//! A job's clock: `run --redis` against a serving node announces its time scale at
//! `autoscale:job` ([`JobRequest`]); the node adopts it — its policy decides in workload time,
//! so a node on another clock would misread every rate and duration — or refuses, saying why,
//! and answers in its status.

use crate::requests::{JobAnswer, JobRequest};

/// What the node does about an announcement.
#[derive(Clone, Debug, PartialEq)]
pub struct JobVerdict {
    pub answer: JobAnswer,
    /// The time scale to adopt, if it changes.
    pub adopt: Option<f64>,
}

/// The node's answer to the announcement `raw`, on a node deciding at `current` wall seconds
/// per workload second; `fixed` when the operator set that scale (`--time-scale`), which a job
/// then cannot change.
pub fn answer(raw: &str, current: f64, fixed: bool) -> JobVerdict {
    let refuse = |id: String, message: String| JobVerdict {
        answer: JobAnswer {
            id,
            accepted: false,
            message,
        },
        adopt: None,
    };
    let job: JobRequest = match serde_json::from_str(raw) {
        Ok(job) => job,
        Err(e) => return refuse(String::new(), format!("unreadable job announcement: {e}")),
    };
    let scale = job.time_scale;
    if let Err(e) = workload::check_time_scale("time_scale", scale) {
        return refuse(job.id, e.to_string());
    }
    if (scale - current).abs() <= 1e-12 * current.max(1.0) {
        return JobVerdict {
            answer: JobAnswer {
                id: job.id,
                accepted: true,
                message: format!("the node decides at time scale {current}, the job's"),
            },
            adopt: None,
        };
    }
    if fixed {
        return refuse(
            job.id,
            format!(
                "the serving node decides at time scale {current} (set by its --time-scale), the job runs at {scale}: \
                 run the job with --time-scale {current}, or serve without --time-scale so that jobs set it"
            ),
        );
    }
    JobVerdict {
        answer: JobAnswer {
            id: job.id,
            accepted: true,
            message: format!("the node adopted the job's time scale {scale} (was {current})"),
        },
        adopt: Some(scale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(scale: f64) -> String {
        serde_json::to_string(&JobRequest {
            id: "j1".into(),
            time_scale: scale,
        })
        .unwrap()
    }

    #[test]
    fn a_node_adopts_the_jobs_clock_unless_its_operator_fixed_one() {
        let v = answer(&job(0.1), 1.0, false);
        assert_eq!(v.adopt, Some(0.1));
        assert!(v.answer.accepted && v.answer.id == "j1", "{v:?}");
        let same = answer(&job(0.1), 0.1, true);
        assert_eq!((same.adopt, same.answer.accepted), (None, true));
        let fixed = answer(&job(0.1), 1.0, true);
        assert_eq!((fixed.adopt, fixed.answer.accepted), (None, false));
        assert!(
            fixed.answer.message.contains("--time-scale 1"),
            "{}",
            fixed.answer.message
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_reason() {
        let v = answer(&job(1000.0), 1.0, false);
        assert!(!v.answer.accepted && v.adopt.is_none());
        assert!(v.answer.message.contains("time_scale"), "{}", v.answer.message);
        let v = answer("{not json", 1.0, false);
        assert!(
            !v.answer.accepted && v.answer.message.contains("unreadable"),
            "{v:?}"
        );
    }
}
