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
    /// Several framework queues one pool of workers serves (an RQ worker started on `high
    /// default`, a Celery worker with `-Q`, BullMQ's wait list and its due delayed jobs): what
    /// waits is the sum, the oldest is the oldest of all. Never nested, never the farm.
    All(Vec<QueueSelector>),
}

/// The forms `--queue` takes, for error messages and `--help`.
pub const FORMS: &str = "farm, list:KEY, stream:KEY@GROUP or delayed:KEY[@s|ms|bullmq], or several of the last three joined by commas";

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
        if s.contains(',') {
            let mut parts: Vec<QueueSelector> = Vec::new();
            for part in s.split(',').map(str::trim) {
                if part.is_empty() {
                    return Err(format!("--queue {s:?}: nothing between two commas or at an end"));
                }
                let one = Self::one(part)?;
                if one.is_farm() {
                    return Err(format!(
                        "--queue {s:?}: the farm's queue is scaled on alone (its deadlines and totals do not add to a framework's)"
                    ));
                }
                if parts.iter().any(|p| p.same_queue(&one)) {
                    return Err(format!("--queue {s:?}: {part} is named twice"));
                }
                parts.push(one);
            }
            return Ok(QueueSelector::All(parts));
        }
        Self::one(s)
    }
}

impl QueueSelector {
    /// One queue, `s` in one of the forms of [`FORMS`] but the list.
    fn one(s: &str) -> Result<Self, String> {
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
            QueueSelector::All(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{part}")?;
                }
                Ok(())
            }
        }
    }
}

impl QueueSelector {
    pub fn is_farm(&self) -> bool {
        *self == QueueSelector::Farm
    }

    /// Whether both select the same queue (a delayed set named twice is one queue whatever
    /// the units given).
    fn same_queue(&self, other: &QueueSelector) -> bool {
        match (self, other) {
            (QueueSelector::Delayed { key: a, .. }, QueueSelector::Delayed { key: b, .. }) => a == b,
            _ => self == other,
        }
    }

    /// The single queues this selects: itself, or the parts of a list.
    pub fn parts(&self) -> &[QueueSelector] {
        match self {
            QueueSelector::All(parts) => parts,
            one => std::slice::from_ref(one),
        }
    }

    /// The key holding the queue (`None` for the farm, whose queue's name is the farm's, and
    /// for a list of queues: see [`Self::parts`]).
    pub fn key(&self) -> Option<&str> {
        match self {
            QueueSelector::Farm | QueueSelector::All(_) => None,
            QueueSelector::List { key }
            | QueueSelector::Stream { key, .. }
            | QueueSelector::Delayed { key, .. } => Some(key),
        }
    }

    /// The lists among the selected queues (their pushes can wake the node).
    pub fn list_keys(&self) -> Vec<&str> {
        self.parts()
            .iter()
            .filter_map(|q| match q {
                QueueSelector::List { key } => Some(key.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Declares the queues to the embedded broker, so they are listed (and kept) while empty.
    pub fn pin(&self, queues: &broker::QueueRegistry) {
        match self {
            QueueSelector::Farm => {}
            QueueSelector::List { key } => queues.pin(0, key.as_bytes()),
            QueueSelector::Stream { key, group } => {
                queues.pin_stream_group(0, key.as_bytes(), group.as_bytes())
            }
            QueueSelector::Delayed { key, unit } => queues.pin_delayed(0, key.as_bytes(), *unit),
            QueueSelector::All(parts) => parts.iter().for_each(|q| q.pin(queues)),
        }
    }

    /// This queue's entry among what the broker lists for its key (`None` for a list of
    /// queues: pick each of its parts).
    pub fn pick<'a>(&self, stats: &'a [broker::QueueStats]) -> Option<&'a broker::QueueStats> {
        use broker::QueueKind;
        stats.iter().find(|q| match self {
            QueueSelector::Farm | QueueSelector::List { .. } => q.kind == QueueKind::List,
            QueueSelector::Stream { group, .. } => {
                q.kind == QueueKind::Stream && q.group.as_deref() == Some(group.as_bytes())
            }
            QueueSelector::Delayed { .. } => q.kind == QueueKind::Delayed,
            QueueSelector::All(_) => false,
        })
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
    fn several_queues_are_one_selector_of_their_parts() {
        let q: QueueSelector = "list:rq:queue:high, list:rq:queue:default,delayed:bull:m:delayed"
            .parse()
            .unwrap();
        assert_eq!(
            q.parts(),
            &[
                QueueSelector::List {
                    key: "rq:queue:high".into()
                },
                QueueSelector::List {
                    key: "rq:queue:default".into()
                },
                QueueSelector::Delayed {
                    key: "bull:m:delayed".into(),
                    unit: ScoreUnit::BullMq
                },
            ]
        );
        assert_eq!(q.key(), None);
        assert!(!q.is_farm());
        assert_eq!(q.list_keys(), ["rq:queue:high", "rq:queue:default"]);
        assert_eq!(
            q.to_string(),
            "list:rq:queue:high,list:rq:queue:default,delayed:bull:m:delayed@bullmq"
        );
        assert_eq!(q.to_string().parse::<QueueSelector>().unwrap(), q);
        let one: QueueSelector = "list:celery".parse().unwrap();
        assert_eq!(one.parts(), std::slice::from_ref(&one));
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
            ("list:a,farm", "scaled on alone"),
            ("list:a,list:a", "named twice"),
            ("delayed:d@s,delayed:d@ms", "named twice"),
            ("list:a,", "nothing between two commas"),
            ("list:a,list:", "the key is empty"),
            ("list:a,stream:b", "name the consumer group"),
        ] {
            let e = text.parse::<QueueSelector>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
