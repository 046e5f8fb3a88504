//! The slow log and the latency monitor: what SLOWLOG and LATENCY report, fed by every call.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// Arguments kept per slow-log entry; the last one kept says how many more there were.
const SLOWLOG_MAX_ARGS: usize = 32;
/// Bytes kept of a long argument; the rest is replaced by a note of how many there were.
const SLOWLOG_MAX_ARG_BYTES: usize = 128;
/// Samples kept per latency event (one per second at most), as Redis keeps 160.
const LATENCY_SAMPLES: usize = 160;

/// One command that ran longer than `slowlog-log-slower-than`.
#[derive(Clone, Debug)]
pub struct SlowEntry {
    pub id: u64,
    pub unix_s: u64,
    pub duration_us: u64,
    /// The arguments as sent, shortened as described on [`SLOWLOG_MAX_ARGS`].
    pub args: Vec<Bytes>,
    pub addr: String,
    pub name: String,
}

/// The slow log (newest entry first) and its two parameters.
#[derive(Debug)]
pub struct Slowlog {
    /// `slowlog-log-slower-than` in µs; negative logs nothing, 0 logs every command.
    pub threshold_us: i64,
    /// `slowlog-max-len`.
    pub max_len: usize,
    entries: VecDeque<SlowEntry>,
    next_id: u64,
}

impl Default for Slowlog {
    fn default() -> Self {
        Slowlog {
            threshold_us: 10_000,
            max_len: 128,
            entries: VecDeque::new(),
            next_id: 0,
        }
    }
}

impl Slowlog {
    /// Whether a command that took `duration_us` belongs in the log (checked before anything
    /// is copied, so the common case costs one comparison).
    #[inline]
    pub fn wants(&self, duration_us: u64) -> bool {
        self.threshold_us >= 0 && duration_us >= self.threshold_us as u64
    }

    /// Adds an entry; the oldest ones go past `max_len`.
    pub fn push(&mut self, unix_s: u64, duration_us: u64, args: &[Bytes], addr: String, name: String) {
        let entry = SlowEntry {
            id: self.next_id,
            unix_s,
            duration_us,
            args: shorten(args),
            addr,
            name,
        };
        self.next_id += 1;
        self.entries.push_front(entry);
        self.trim();
    }

    /// Drops the oldest entries beyond `max_len`.
    fn trim(&mut self) {
        self.entries.truncate(self.max_len);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> impl Iterator<Item = &SlowEntry> {
        self.entries.iter().take(count)
    }

    /// Empties the log; ids keep counting, as in Redis.
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// The arguments a slow-log entry keeps: at most 32 (the 32nd then tells how many more there
/// were) of at most 128 bytes each (with a note of the bytes left out), so that one huge
/// command cannot pin megabytes in the log.
fn shorten(args: &[Bytes]) -> Vec<Bytes> {
    let kept = args.len().min(SLOWLOG_MAX_ARGS);
    let mut out = Vec::with_capacity(kept);
    for (i, a) in args[..kept].iter().enumerate() {
        if kept < args.len() && i == kept - 1 {
            let more = args.len() - kept + 1;
            out.push(Bytes::from(format!("... ({more} more arguments)")));
        } else if a.len() > SLOWLOG_MAX_ARG_BYTES {
            let mut s = a[..SLOWLOG_MAX_ARG_BYTES].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_ARG_BYTES).as_bytes());
            out.push(Bytes::from(s));
        } else {
            // A copy, not a slice: an argument shares the buffer its whole (pipelined) request
            // batch was read into, which an entry would otherwise keep alive.
            out.push(Bytes::copy_from_slice(a));
        }
    }
    out
}

/// Buckets of a command's latency histogram: 1 µs up to 1 s, as Redis tracks.
pub const LATENCY_BUCKETS: usize = 21;

/// The latency bucket of a call that took `usec`: the first power of two from 1024 ns that
/// the duration does not pass by more than Redis's two-digit histogram precision (1/128), so
/// calls land where Redis's cumulative buckets count them.
#[inline]
pub fn latency_bucket(usec: u64) -> usize {
    let ns = usec.saturating_mul(1000).clamp(1, 1_000_000_000);
    let top = |k: u32| (1024u64 << k) + (8u64 << k) - 1;
    // The power of two at or above `ns`, from 1024 ns: at most one step too high.
    let mut k = (64 - (ns - 1).leading_zeros()).saturating_sub(10);
    if k > 0 && ns <= top(k - 1) {
        k -= 1;
    }
    (k as usize).min(LATENCY_BUCKETS - 1)
}

/// One latency sample: the worst latency seen in one second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySample {
    pub unix_s: u64,
    pub latency_ms: u64,
}

/// The samples of one event and the worst latency ever seen for it.
#[derive(Debug, Default)]
pub struct LatencySeries {
    pub samples: VecDeque<LatencySample>,
    pub max_ms: u64,
}

/// The latency monitor: events that took at least `latency-monitor-threshold` ms.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    /// `latency-monitor-threshold` in ms; 0 records nothing.
    pub threshold_ms: u64,
    pub events: BTreeMap<&'static str, LatencySeries>,
}

impl LatencyMonitor {
    /// Records `latency_ms` for `event` if the monitor is on and it reaches the threshold.
    #[inline]
    pub fn observe(&mut self, event: &'static str, unix_s: u64, latency_ms: u64) {
        if self.threshold_ms == 0 || latency_ms < self.threshold_ms {
            return;
        }
        let series = self.events.entry(event).or_default();
        series.max_ms = series.max_ms.max(latency_ms);
        // Several spikes in one second are one sample: the worst of them.
        if let Some(last) = series.samples.back_mut() {
            if last.unix_s == unix_s {
                last.latency_ms = last.latency_ms.max(latency_ms);
                return;
            }
        }
        series.samples.push_back(LatencySample { unix_s, latency_ms });
        if series.samples.len() > LATENCY_SAMPLES {
            series.samples.pop_front();
        }
    }

    /// Forgets the named events (all of them when `names` is empty); returns how many it held.
    pub fn reset(&mut self, names: &[Bytes]) -> usize {
        if names.is_empty() {
            let n = self.events.len();
            self.events.clear();
            return n;
        }
        let mut n = 0;
        for name in names {
            let found = self.events.keys().find(|k| k.as_bytes() == &name[..]).copied();
            if let Some(k) = found {
                self.events.remove(k);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_are_shortened_as_redis_shortens_them() {
        let many: Vec<Bytes> = (0..40).map(|i| Bytes::from(i.to_string())).collect();
        let out = shorten(&many);
        assert_eq!(out.len(), 32);
        assert_eq!(&out[30][..], b"30");
        assert_eq!(&out[31][..], b"... (9 more arguments)");
        let long = vec![Bytes::from(vec![b'x'; 130])];
        let out = shorten(&long);
        assert_eq!(out[0].len(), 128 + "... (2 more bytes)".len());
        assert!(out[0].ends_with(b"... (2 more bytes)"));
        let exact: Vec<Bytes> = (0..32).map(|i| Bytes::from(i.to_string())).collect();
        assert_eq!(shorten(&exact), exact);
    }

    #[test]
    fn the_log_keeps_the_newest_entries_up_to_its_length() {
        let mut log = Slowlog {
            max_len: 2,
            ..Slowlog::default()
        };
        for i in 0..3u64 {
            log.push(i, i, &[Bytes::from("ping")], String::new(), String::new());
        }
        let ids: Vec<u64> = log.newest(10).map(|e| e.id).collect();
        assert_eq!(ids, vec![2, 1]);
        log.reset();
        assert!(log.is_empty());
        log.push(9, 9, &[], String::new(), String::new());
        assert_eq!(log.newest(1).next().map(|e| e.id), Some(3));
        assert!(!Slowlog {
            threshold_us: -1,
            ..Slowlog::default()
        }
        .wants(u64::MAX));
        assert!(Slowlog {
            threshold_us: 0,
            ..Slowlog::default()
        }
        .wants(0));
    }

    #[test]
    fn latency_buckets_are_redis_histogram_buckets() {
        // 0 and 1 µs are in the first bucket (up to 1031 ns), 2 µs in the second (2063 ns).
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(2), 1);
        assert_eq!(latency_bucket(3), 2);
        assert_eq!(latency_bucket(4), 2);
        assert_eq!(latency_bucket(5), 3);
        // Up to 66047 ns counts as 65536 ns; 67 µs passes it: the next bucket (131072 ns).
        assert_eq!(latency_bucket(66), 6);
        assert_eq!(latency_bucket(67), 7);
        assert_eq!(latency_bucket(1_000_000), 20);
        assert_eq!(latency_bucket(u64::MAX), 20);
    }

    #[test]
    fn latency_samples_keep_the_worst_per_second() {
        let mut m = LatencyMonitor::default();
        m.observe("command", 1, 500);
        assert!(m.events.is_empty(), "off at threshold 0");
        m.threshold_ms = 10;
        m.observe("command", 1, 9);
        m.observe("command", 1, 12);
        m.observe("command", 1, 30);
        m.observe("command", 1, 20);
        m.observe("command", 2, 11);
        let s = &m.events["command"];
        assert_eq!(s.max_ms, 30);
        let got: Vec<(u64, u64)> = s.samples.iter().map(|x| (x.unix_s, x.latency_ms)).collect();
        assert_eq!(got, vec![(1, 30), (2, 11)]);
        assert_eq!(m.reset(&[Bytes::from("nope"), Bytes::from("command")]), 1);
        assert!(m.events.is_empty());
    }
}
