//! Model-based property test for streams with a consumer group: random XADD, XREADGROUP,
//! XACK, XCLAIM, XAUTOCLAIM, XDEL and consumer deletions run through the broker's real
//! dispatch and against a plain model of the stream and its pending entries list. Every reply
//! must agree; no entry is delivered twice through `>`; every entry added is, at every step,
//! exactly one of: acknowledged, pending, not yet delivered, or gone by a documented path
//! (deleted before delivery, deleted while pending and then dropped by a claim, or pending
//! for a consumer that was deleted); and the pending list (XPENDING) is exact.

use broker::commands::{dispatch, Outcome};
use broker::reply::{Protocol, Reply};
use broker::state::{BrokerConfig, ClientInfo, ClientState, Shared};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const CONSUMERS: [&str; 3] = ["alice", "bob", "carol"];

#[derive(Clone, Debug)]
enum Op {
    Add,
    ReadNew {
        consumer: usize,
        count: usize,
        noack: bool,
    },
    ReadHistory {
        consumer: usize,
    },
    Ack {
        pick: usize,
        n: usize,
    },
    Claim {
        consumer: usize,
        pick: usize,
    },
    AutoClaim {
        consumer: usize,
        count: usize,
    },
    Del {
        pick: usize,
    },
    DelConsumer {
        consumer: usize,
    },
    Pending,
    /// DUMP the stream and RESTORE it over itself (REPLACE): nothing after may tell.
    DumpRestore,
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CONSUMERS.len();
    prop_oneof![
        3 => Just(Op::Add),
        3 => (c.clone(), 0..4usize, prop::bool::weighted(0.1)).prop_map(|(consumer, count, noack)| Op::ReadNew { consumer, count, noack }),
        1 => c.clone().prop_map(|consumer| Op::ReadHistory { consumer }),
        2 => (any::<usize>(), 1..3usize).prop_map(|(pick, n)| Op::Ack { pick, n }),
        2 => (c.clone(), any::<usize>()).prop_map(|(consumer, pick)| Op::Claim { consumer, pick }),
        1 => (c.clone(), 1..4usize).prop_map(|(consumer, count)| Op::AutoClaim { consumer, count }),
        1 => any::<usize>().prop_map(|pick| Op::Del { pick }),
        1 => c.prop_map(|consumer| Op::DelConsumer { consumer }),
        1 => Just(Op::Pending),
        1 => Just(Op::DumpRestore),
    ]
}

/// Where an added entry is, for the "none lost" invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Undelivered,
    Pending,
    Acked,
    /// Delivered with NOACK: the group never tracks it.
    NoAck,
    DeletedUndelivered,
    /// Deleted from the stream while pending, then dropped from the pending list by a claim.
    DroppedDeleted,
    /// Pending for a consumer that XGROUP DELCONSUMER removed.
    DroppedWithConsumer,
}

#[derive(Default)]
struct Model {
    /// Entries in the stream: id (ms, seq 0) → field value.
    entries: BTreeMap<u64, String>,
    next: u64,
    last_delivered: u64,
    /// Pending: id → (consumer, delivery count).
    pel: BTreeMap<u64, (usize, u64)>,
    consumers: BTreeSet<usize>,
    fate: BTreeMap<u64, Fate>,
    delivered_new: BTreeSet<u64>,
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn id(ms: u64) -> String {
    format!("{ms}-0")
}

impl Model {
    fn entry(&self, ms: u64) -> Reply {
        Reply::Array(vec![
            bulk(&id(ms)),
            Reply::Array(vec![bulk("f"), bulk(&self.entries[&ms])]),
        ])
    }

    fn pick<T: Copy>(items: impl Iterator<Item = T>, pick: usize) -> Option<T> {
        let v: Vec<T> = items.collect();
        (!v.is_empty()).then(|| v[pick % v.len()])
    }

    /// The expected reply and the command; `None` for the reply when only its shape is checked.
    fn apply(&mut self, op: &Op) -> (Vec<String>, Option<Reply>) {
        let s = |x: &str| x.to_string();
        match *op {
            Op::Add => {
                self.next += 1;
                let ms = self.next;
                self.entries.insert(ms, format!("v{ms}"));
                self.fate.insert(ms, Fate::Undelivered);
                (
                    vec![s("XADD"), s("q"), id(ms), s("f"), format!("v{ms}")],
                    Some(bulk(&id(ms))),
                )
            }
            Op::ReadNew {
                consumer,
                count,
                noack,
            } => {
                self.consumers.insert(consumer);
                let mut args = vec![s("XREADGROUP"), s("GROUP"), s("g"), s(CONSUMERS[consumer])];
                if count > 0 {
                    args.extend([s("COUNT"), count.to_string()]);
                }
                if noack {
                    args.push(s("NOACK"));
                }
                args.extend([s("STREAMS"), s("q"), s(">")]);
                let take = if count == 0 { usize::MAX } else { count };
                let ids: Vec<u64> = self
                    .entries
                    .range(self.last_delivered + 1..)
                    .take(take)
                    .map(|(k, _)| *k)
                    .collect();
                if ids.is_empty() {
                    return (args, Some(Reply::NullArray));
                }
                let entries = ids.iter().map(|&ms| self.entry(ms)).collect();
                for &ms in &ids {
                    self.last_delivered = ms;
                    if noack {
                        self.fate.insert(ms, Fate::NoAck);
                    } else {
                        self.pel.insert(ms, (consumer, 1));
                        self.fate.insert(ms, Fate::Pending);
                    }
                }
                (
                    args,
                    Some(Reply::Array(vec![Reply::Array(vec![
                        bulk("q"),
                        Reply::Array(entries),
                    ])])),
                )
            }
            Op::ReadHistory { consumer } => {
                self.consumers.insert(consumer);
                let args = vec![
                    s("XREADGROUP"),
                    s("GROUP"),
                    s("g"),
                    s(CONSUMERS[consumer]),
                    s("STREAMS"),
                    s("q"),
                    s("0"),
                ];
                let mut items = Vec::new();
                for (&ms, (c, n)) in self.pel.iter_mut() {
                    if *c == consumer {
                        *n += 1;
                        items.push(match self.entries.get(&ms) {
                            Some(v) => {
                                Reply::Array(vec![bulk(&id(ms)), Reply::Array(vec![bulk("f"), bulk(v)])])
                            }
                            None => Reply::Array(vec![bulk(&id(ms)), Reply::NullArray]),
                        });
                    }
                }
                (
                    args,
                    Some(Reply::Array(vec![Reply::Array(vec![
                        bulk("q"),
                        Reply::Array(items),
                    ])])),
                )
            }
            Op::Ack { pick, n } => {
                let mut args = vec![s("XACK"), s("q"), s("g")];
                let mut acked = 0;
                let candidates: Vec<u64> = self.pel.keys().copied().chain([pick as u64 % 50 + 1]).collect();
                let mut chosen = BTreeSet::new();
                for i in 0..n {
                    let ms = candidates[(pick + i) % candidates.len()];
                    args.push(id(ms));
                    chosen.insert(ms);
                }
                for ms in chosen {
                    if self.pel.remove(&ms).is_some() {
                        acked += 1;
                        self.fate.insert(ms, Fate::Acked);
                    }
                }
                (args, Some(Reply::Int(acked)))
            }
            Op::Claim { consumer, pick } => {
                let target = Self::pick(self.pel.keys().copied(), pick).unwrap_or(pick as u64 % 50 + 1);
                let args = vec![
                    s("XCLAIM"),
                    s("q"),
                    s("g"),
                    s(CONSUMERS[consumer]),
                    s("0"),
                    id(target),
                ];
                let mut out = Vec::new();
                if let Some(&(_, n)) = self.pel.get(&target) {
                    if self.entries.contains_key(&target) {
                        self.consumers.insert(consumer);
                        self.pel.insert(target, (consumer, n + 1));
                        out.push(self.entry(target));
                    } else {
                        self.pel.remove(&target);
                        self.fate.insert(target, Fate::DroppedDeleted);
                    }
                }
                (args, Some(Reply::Array(out)))
            }
            Op::AutoClaim { consumer, count } => {
                let args = vec![
                    s("XAUTOCLAIM"),
                    s("q"),
                    s("g"),
                    s(CONSUMERS[consumer]),
                    s("0"),
                    s("0"),
                    s("COUNT"),
                    count.to_string(),
                ];
                let mut attempts = count * 10;
                let mut left = count;
                let mut claimed = Vec::new();
                let mut deleted = Vec::new();
                let ids: Vec<u64> = self.pel.keys().copied().collect();
                let mut cursor = 0u64;
                let mut i = 0;
                while attempts > 0 && left > 0 && i < ids.len() {
                    attempts -= 1;
                    let ms = ids[i];
                    i += 1;
                    let n = self.pel[&ms].1;
                    if self.entries.contains_key(&ms) {
                        self.consumers.insert(consumer);
                        self.pel.insert(ms, (consumer, n + 1));
                        claimed.push(self.entry(ms));
                        left -= 1;
                    } else {
                        self.pel.remove(&ms);
                        self.fate.insert(ms, Fate::DroppedDeleted);
                        deleted.push(bulk(&id(ms)));
                    }
                }
                if i < ids.len() {
                    cursor = ids[i];
                }
                let cursor = if cursor == 0 { s("0-0") } else { id(cursor) };
                (
                    args,
                    Some(Reply::Array(vec![
                        bulk(&cursor),
                        Reply::Array(claimed),
                        Reply::Array(deleted),
                    ])),
                )
            }
            Op::Del { pick } => {
                let target = Self::pick(self.entries.keys().copied(), pick).unwrap_or(1);
                let args = vec![s("XDEL"), s("q"), id(target)];
                let existed = self.entries.remove(&target).is_some();
                if existed && self.fate.get(&target) == Some(&Fate::Undelivered) {
                    self.fate.insert(target, Fate::DeletedUndelivered);
                }
                (args, Some(Reply::Int(i64::from(existed))))
            }
            Op::DelConsumer { consumer } => {
                let args = vec![
                    s("XGROUP"),
                    s("DELCONSUMER"),
                    s("q"),
                    s("g"),
                    s(CONSUMERS[consumer]),
                ];
                let gone: Vec<u64> = self
                    .pel
                    .iter()
                    .filter(|(_, (c, _))| *c == consumer)
                    .map(|(k, _)| *k)
                    .collect();
                for ms in &gone {
                    self.pel.remove(ms);
                    self.fate.insert(*ms, Fate::DroppedWithConsumer);
                }
                let existed = self.consumers.remove(&consumer);
                (
                    args,
                    Some(Reply::Int(if existed { gone.len() as i64 } else { 0 })),
                )
            }
            // No command of its own: the test runs DUMP, then RESTORE with the payload.
            Op::DumpRestore => (Vec::new(), Some(Reply::Ok)),
            Op::Pending => {
                let args = vec![s("XPENDING"), s("q"), s("g")];
                if self.pel.is_empty() {
                    return (
                        args,
                        Some(Reply::Array(vec![
                            Reply::Int(0),
                            Reply::Null,
                            Reply::Null,
                            Reply::NullArray,
                        ])),
                    );
                }
                let mut per: BTreeMap<&str, usize> = BTreeMap::new();
                for (c, _) in self.pel.values() {
                    *per.entry(CONSUMERS[*c]).or_default() += 1;
                }
                let first = *self.pel.keys().next().unwrap_or(&0);
                let last = *self.pel.keys().next_back().unwrap_or(&0);
                (
                    args,
                    Some(Reply::Array(vec![
                        Reply::Int(self.pel.len() as i64),
                        bulk(&id(first)),
                        bulk(&id(last)),
                        Reply::Array(
                            per.into_iter()
                                .map(|(c, n)| Reply::Array(vec![bulk(c), bulk(&n.to_string())]))
                                .collect(),
                        ),
                    ])),
                )
            }
        }
    }
}

fn run(shared: &Shared, client: &mut ClientState, args: &[String]) -> Reply {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.clone())).collect();
    let mut engine = shared.engine.lock();
    match dispatch(shared, &mut engine, client, &args) {
        Outcome::Reply(r) => r,
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// DUMP `q`, then RESTORE the payload over it; the RESTORE's reply.
fn dump_restore(shared: &Shared, client: &mut ClientState) -> Reply {
    let Reply::Bulk(payload) = run(shared, client, &["DUMP".to_string(), "q".to_string()]) else {
        return Reply::Null;
    };
    let args = [&b"RESTORE"[..], b"q", b"0", &payload, b"REPLACE"].map(Bytes::copy_from_slice);
    let mut engine = shared.engine.lock();
    match dispatch(shared, &mut engine, client, &args) {
        Outcome::Reply(r) => r,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn encoded(r: &Reply) -> BytesMut {
    let mut out = BytesMut::new();
    r.encode(Protocol::Resp2, &mut out);
    out
}

/// The ids an XREADGROUP reply delivered.
fn delivered_ids(r: &Reply) -> Vec<u64> {
    let mut out = Vec::new();
    if let Reply::Array(streams) = r {
        for s in streams {
            if let Reply::Array(kv) = s {
                if let Some(Reply::Array(entries)) = kv.get(1) {
                    for e in entries {
                        if let Reply::Array(parts) = e {
                            if let Some(Reply::Bulk(id)) = parts.first() {
                                let text = String::from_utf8_lossy(id);
                                let ms: Option<u64> = text.split('-').next().and_then(|m| m.parse().ok());
                                out.extend(ms);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The pending list as XPENDING's extended form reports it: (id, consumer, delivery count).
fn pending_list(shared: &Shared, client: &mut ClientState) -> Vec<(String, String, i64)> {
    let args: Vec<String> = ["XPENDING", "q", "g", "-", "+", "1000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = Vec::new();
    if let Reply::Array(items) = run(shared, client, &args) {
        for item in items {
            if let Reply::Array(f) = item {
                if let (Some(Reply::Bulk(id)), Some(Reply::Bulk(c)), Some(Reply::Int(n))) =
                    (f.first(), f.get(1), f.get(3))
                {
                    out.push((
                        String::from_utf8_lossy(id).into_owned(),
                        String::from_utf8_lossy(c).into_owned(),
                        *n,
                    ));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn stream_group_commands_match_a_model(ops in prop::collection::vec(op(), 1..80)) {
        let shared = Shared::new(BrokerConfig::default());
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut client = ClientState::new(Arc::new(ClientInfo::new(1, addr, addr)), true);
        let create: Vec<String> = ["XGROUP", "CREATE", "q", "g", "0", "MKSTREAM"].iter().map(|s| s.to_string()).collect();
        prop_assert_eq!(run(&shared, &mut client, &create), Reply::Ok);
        let mut model = Model::default();
        for op in &ops {
            let (args, expected) = model.apply(op);
            let got = if matches!(op, Op::DumpRestore) {
                dump_restore(&shared, &mut client)
            } else {
                run(&shared, &mut client, &args)
            };
            if let Some(want) = expected {
                prop_assert_eq!(encoded(&got), encoded(&want), "after {:?}", op);
            }
            if matches!(op, Op::ReadNew { .. }) {
                for ms in delivered_ids(&got) {
                    // Through `>`, an entry goes to one consumer of the group, once.
                    prop_assert!(model.delivered_new.insert(ms), "{} delivered twice", ms);
                }
            }
            // The pending list is exact: ids, owners and delivery counts.
            let want: Vec<(String, String, i64)> = model
                .pel
                .iter()
                .map(|(ms, (c, n))| (id(*ms), CONSUMERS[*c].to_string(), *n as i64))
                .collect();
            prop_assert_eq!(pending_list(&shared, &mut client), want, "after {:?}", op);
            // None lost: each entry is where its fate says, and only there.
            for (&ms, fate) in &model.fate {
                let pending = model.pel.contains_key(&ms);
                let in_stream = model.entries.contains_key(&ms);
                let undelivered = ms > model.last_delivered;
                let ok = match fate {
                    Fate::Pending => pending,
                    Fate::Undelivered => in_stream && undelivered && !pending,
                    Fate::Acked | Fate::NoAck | Fate::DroppedWithConsumer => !pending && !undelivered,
                    Fate::DeletedUndelivered => !in_stream && !pending,
                    Fate::DroppedDeleted => !in_stream && !pending,
                };
                prop_assert!(ok, "entry {} is not where {:?} says", ms, fate);
            }
        }
    }
}
