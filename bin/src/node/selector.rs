//! Which queue the node scales on (`--queue`): the farm's own work queue, or a job
//! framework's queue in any of the shapes the broker counts — a list (RQ, Celery, BullMQ's
//! wait list), a stream's consumer group, a sorted set of delayed jobs.

use broker::ScoreUnit;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq)]
pub enum QueueSelector {
    /// The farm's `worker_queue`, with its tasks' deadlines and the collector's totals.
    Farm,
    /// A list producers push to and workers pop from.
    List { key: String },
    /// Consumer group `group` of stream `key`: undelivered entries wait, delivered ones are
    /// in flight until acknowledged.
    Stream { key: String, group: String },
    /// A sorted set of jobs scored by the time they are due: the due ones wait.
    Delayed { key: String, unit: ScoreUnit },
}

/// The forms `--queue` takes, for error messages and `--help`.
pub const FORMS: &str = "farm, list:KEY, stream:KEY@GROUP or delayed:KEY[@s|ms|bullmq]";

/// The score unit of the delayed-job sets of the frameworks we know by their key names.
fn known_unit(key: &str) -> Option<ScoreUnit> {
    broker::metrics::parse_delayed_patterns(broker::metrics::DEFAULT_DELAYED_PATTERNS)
        .ok()?
        .into_iter()
        .find(|(pattern, _)| broker::glob::glob_match(pattern, key.as_bytes(), false))
        .map(|(_, unit)| unit)
}

impl FromStr for QueueSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nonempty = |what: &str, v: &str| -> Result<String, String> {
            if v.is_empty() {
                Err(format!("--queue {s:?}: the {what} is empty (forms: {FORMS})"))
            } else {
                Ok(v.to_owned())
            }
        };
        if s == "farm" {
            return Ok(QueueSelector::Farm);
        }
        if let Some(key) = s.strip_prefix("list:") {
            return Ok(QueueSelector::List {
                key: nonempty("key", key)?,
            });
        }
        if let Some(rest) = s.strip_prefix("stream:") {
            // Keys often hold ':' and '@' rarely; group names neither: split at the last '@'.
            let Some((key, group)) = rest.rsplit_once('@') else {
                return Err(format!(
                    "--queue {s:?}: name the consumer group, stream:KEY@GROUP"
                ));
            };
            return Ok(QueueSelector::Stream {
                key: nonempty("key", key)?,
                group: nonempty("group", group)?,
            });
        }
        if let Some(rest) = s.strip_prefix("delayed:") {
            let (key, unit) = match rest.rsplit_once('@') {
                Some((key, unit)) => {
                    let unit = ScoreUnit::parse(unit).ok_or_else(|| {
                        format!("--queue {s:?}: unknown score unit {unit:?} (s, ms or bullmq)")
                    })?;
                    (key, unit)
                }
                None => {
                    let unit = known_unit(rest).ok_or_else(|| {
                        format!("--queue {s:?}: say how the scores encode due times, delayed:KEY@s, @ms or @bullmq")
                    })?;
                    (rest, unit)
                }
            };
            return Ok(QueueSelector::Delayed {
                key: nonempty("key", key)?,
                unit,
            });
        }
        Err(format!("--queue {s:?}: expected {FORMS}"))
    }
}

impl fmt::Display for QueueSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueSelector::Farm => write!(f, "farm"),
            QueueSelector::List { key } => write!(f, "list:{key}"),
            QueueSelector::Stream { key, group } => write!(f, "stream:{key}@{group}"),
            QueueSelector::Delayed { key, unit } => write!(f, "delayed:{key}@{}", unit.name()),
        }
    }
}

impl QueueSelector {
    pub fn is_farm(&self) -> bool {
        *self == QueueSelector::Farm
    }

    /// The key holding the queue (`None` for the farm: its queue's name is the farm's).
    pub fn key(&self) -> Option<&str> {
        match self {
            QueueSelector::Farm => None,
            QueueSelector::List { key }
            | QueueSelector::Stream { key, .. }
            | QueueSelector::Delayed { key, .. } => Some(key),
        }
    }

    /// Declares the queue to the embedded broker, so it is listed (and kept) while empty.
    pub fn pin(&self, queues: &broker::QueueRegistry) {
        match self {
            QueueSelector::Farm => {}
            QueueSelector::List { key } => queues.pin(0, key.as_bytes()),
            QueueSelector::Stream { key, group } => {
                queues.pin_stream_group(0, key.as_bytes(), group.as_bytes())
            }
            QueueSelector::Delayed { key, unit } => queues.pin_delayed(0, key.as_bytes(), *unit),
        }
    }

    /// This queue's entry among what the broker lists for its key.
    pub fn pick<'a>(&self, stats: &'a [broker::QueueStats]) -> Option<&'a broker::QueueStats> {
        use broker::QueueKind;
        stats.iter().find(|q| match self {
            QueueSelector::Farm | QueueSelector::List { .. } => q.kind == QueueKind::List,
            QueueSelector::Stream { group, .. } => {
                q.kind == QueueKind::Stream && q.group.as_deref() == Some(group.as_bytes())
            }
            QueueSelector::Delayed { .. } => q.kind == QueueKind::Delayed,
        })
    }

    /// The label QSTATS lists this queue under.
    pub fn label(&self) -> Option<String> {
        match self {
            QueueSelector::Farm => None,
            QueueSelector::Stream { key, group } => Some(format!("{key}@{group}")),
            QueueSelector::List { key } | QueueSelector::Delayed { key, .. } => Some(key.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, expected) in [
            ("farm", QueueSelector::Farm),
            (
                "list:rq:queue:default",
                QueueSelector::List {
                    key: "rq:queue:default".into(),
                },
            ),
            (
                "stream:orders:in@billing",
                QueueSelector::Stream {
                    key: "orders:in".into(),
                    group: "billing".into(),
                },
            ),
            (
                "delayed:jobs:later@ms",
                QueueSelector::Delayed {
                    key: "jobs:later".into(),
                    unit: ScoreUnit::Millis,
                },
            ),
        ] {
            let parsed: QueueSelector = text.parse().unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn framework_delayed_sets_need_no_unit() {
        assert_eq!(
            "delayed:rq:scheduled:default".parse::<QueueSelector>().unwrap(),
            QueueSelector::Delayed {
                key: "rq:scheduled:default".into(),
                unit: ScoreUnit::Seconds
            }
        );
        assert_eq!(
            "delayed:bull:mail:delayed".parse::<QueueSelector>().unwrap(),
            QueueSelector::Delayed {
                key: "bull:mail:delayed".into(),
                unit: ScoreUnit::BullMq
            }
        );
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for (text, says) in [
            ("worker_queue", "expected farm, list:KEY"),
            ("list:", "the key is empty"),
            ("stream:orders", "name the consumer group"),
            ("stream:orders@", "the group is empty"),
            ("delayed:later", "say how the scores encode due times"),
            ("delayed:later@hours", "unknown score unit"),
        ] {
            let e = text.parse::<QueueSelector>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
