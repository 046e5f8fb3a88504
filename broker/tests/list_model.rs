//! Model-based property test: random sequences of list commands run through the broker's real
//! command dispatch and against a plain `VecDeque` model; every reply and the final contents
//! must agree, and the queue counters must add up.

use broker::commands::{dispatch, Outcome};
use broker::reply::{Protocol, Reply};
use broker::state::{BrokerConfig, ClientInfo, ClientState, Shared};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Op {
    Push {
        left: bool,
        key: usize,
        vals: Vec<u8>,
    },
    Pop {
        left: bool,
        key: usize,
        count: Option<usize>,
    },
    Range {
        key: usize,
        start: i64,
        stop: i64,
    },
    Index {
        key: usize,
        index: i64,
    },
    Set {
        key: usize,
        index: i64,
        val: u8,
    },
    Rem {
        key: usize,
        count: i64,
        val: u8,
    },
    Trim {
        key: usize,
        start: i64,
        stop: i64,
    },
    Insert {
        key: usize,
        after: bool,
        pivot: u8,
        val: u8,
    },
    Move {
        src: usize,
        dst: usize,
        from_left: bool,
        to_left: bool,
    },
    Len {
        key: usize,
    },
}

const KEYS: [&str; 2] = ["qa", "qb"];

fn val(v: u8) -> String {
    format!("v{}", v % 4)
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..2usize;
    let idx = -6i64..6;
    prop_oneof![
        (
            any::<bool>(),
            key.clone(),
            prop::collection::vec(any::<u8>(), 1..4)
        )
            .prop_map(|(left, key, vals)| Op::Push { left, key, vals }),
        (any::<bool>(), key.clone(), prop::option::of(0..4usize)).prop_map(|(left, key, count)| Op::Pop {
            left,
            key,
            count
        }),
        (key.clone(), idx.clone(), idx.clone()).prop_map(|(key, start, stop)| Op::Range { key, start, stop }),
        (key.clone(), idx.clone()).prop_map(|(key, index)| Op::Index { key, index }),
        (key.clone(), idx.clone(), any::<u8>()).prop_map(|(key, index, val)| Op::Set { key, index, val }),
        (key.clone(), -3i64..3, any::<u8>()).prop_map(|(key, count, val)| Op::Rem { key, count, val }),
        (key.clone(), idx.clone(), idx).prop_map(|(key, start, stop)| Op::Trim { key, start, stop }),
        (key.clone(), any::<bool>(), any::<u8>(), any::<u8>()).prop_map(|(key, after, pivot, val)| {
            Op::Insert {
                key,
                after,
                pivot,
                val,
            }
        }),
        (key.clone(), key.clone(), any::<bool>(), any::<bool>()).prop_map(
            |(src, dst, from_left, to_left)| Op::Move {
                src,
                dst,
                from_left,
                to_left
            }
        ),
        key.prop_map(|key| Op::Len { key }),
    ]
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// Redis start/stop semantics over a model list.
fn norm(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 { (len + start).max(0) } else { start };
    let e = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (s <= e && s < len).then_some((s as usize, e as usize))
}

/// Applies an op to the model and returns the expected reply and the command's arguments.
fn apply(model: &mut HashMap<usize, VecDeque<String>>, op: &Op) -> (Vec<String>, Reply) {
    let name = |k: usize| KEYS[k].to_string();
    let end = |left: bool| if left { "LEFT" } else { "RIGHT" }.to_string();
    let (args, reply) = match op {
        Op::Push { left, key, vals } => {
            let l = model.entry(*key).or_default();
            for v in vals {
                if *left {
                    l.push_front(val(*v))
                } else {
                    l.push_back(val(*v))
                }
            }
            let mut args = vec![if *left { "LPUSH" } else { "RPUSH" }.to_string(), name(*key)];
            args.extend(vals.iter().map(|v| val(*v)));
            (args, Reply::Int(l.len() as i64))
        }
        Op::Pop { left, key, count } => {
            let mut args = vec![if *left { "LPOP" } else { "RPOP" }.to_string(), name(*key)];
            if let Some(c) = count {
                args.push(c.to_string());
            }
            let reply = match (model.get_mut(key), count) {
                (None, Some(_)) => Reply::NullArray,
                (None, None) => Reply::Null,
                (Some(l), None) => {
                    let v = if *left { l.pop_front() } else { l.pop_back() };
                    v.map_or(Reply::Null, |v| bulk(&v))
                }
                (Some(l), Some(c)) => {
                    let mut out = Vec::new();
                    for _ in 0..*c {
                        let v = if *left { l.pop_front() } else { l.pop_back() };
                        match v {
                            Some(v) => out.push(bulk(&v)),
                            None => break,
                        }
                    }
                    Reply::Array(out)
                }
            };
            (args, reply)
        }
        Op::Range { key, start, stop } => {
            let args = vec!["LRANGE".into(), name(*key), start.to_string(), stop.to_string()];
            let items = model
                .get(key)
                .map_or(vec![], |l| match norm(*start, *stop, l.len()) {
                    Some((s, e)) => l.range(s..=e).map(|v| bulk(v)).collect(),
                    None => vec![],
                });
            (args, Reply::Array(items))
        }
        Op::Index { key, index } => {
            let args = vec!["LINDEX".into(), name(*key), index.to_string()];
            let reply = model.get(key).and_then(|l| {
                let i = if *index < 0 {
                    l.len() as i64 + index
                } else {
                    *index
                };
                (i >= 0).then(|| l.get(i as usize)).flatten().map(|v| bulk(v))
            });
            (args, reply.unwrap_or(Reply::Null))
        }
        Op::Set { key, index, val: v } => {
            let args = vec!["LSET".into(), name(*key), index.to_string(), val(*v)];
            let reply = match model.get_mut(key) {
                None => Reply::error("ERR no such key"),
                Some(l) => {
                    let i = if *index < 0 {
                        l.len() as i64 + index
                    } else {
                        *index
                    };
                    match (i >= 0).then(|| l.get_mut(i as usize)).flatten() {
                        Some(slot) => {
                            *slot = val(*v);
                            Reply::Ok
                        }
                        None => Reply::error("ERR index out of range"),
                    }
                }
            };
            (args, reply)
        }
        Op::Rem { key, count, val: v } => {
            let args = vec!["LREM".into(), name(*key), count.to_string(), val(*v)];
            let target = val(*v);
            let removed = model.get_mut(key).map_or(0, |l| {
                let limit = if *count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut removed = 0;
                if *count >= 0 {
                    let mut out = VecDeque::new();
                    for x in l.drain(..) {
                        if x == target && removed < limit {
                            removed += 1;
                        } else {
                            out.push_back(x);
                        }
                    }
                    *l = out;
                } else {
                    let mut out = VecDeque::new();
                    for x in l.drain(..).rev() {
                        if x == target && removed < limit {
                            removed += 1;
                        } else {
                            out.push_front(x);
                        }
                    }
                    *l = out;
                }
                removed
            });
            (args, Reply::Int(removed as i64))
        }
        Op::Trim { key, start, stop } => {
            let args = vec!["LTRIM".into(), name(*key), start.to_string(), stop.to_string()];
            if let Some(l) = model.get_mut(key) {
                *l = match norm(*start, *stop, l.len()) {
                    Some((s, e)) => l.range(s..=e).cloned().collect(),
                    None => VecDeque::new(),
                };
            }
            (args, Reply::Ok)
        }
        Op::Insert {
            key,
            after,
            pivot,
            val: v,
        } => {
            let args = vec![
                "LINSERT".into(),
                name(*key),
                if *after { "AFTER" } else { "BEFORE" }.into(),
                val(*pivot),
                val(*v),
            ];
            let reply = match model.get_mut(key) {
                None => Reply::Int(0),
                Some(l) => match l.iter().position(|x| *x == val(*pivot)) {
                    None => Reply::Int(-1),
                    Some(p) => {
                        l.insert(if *after { p + 1 } else { p }, val(*v));
                        Reply::Int(l.len() as i64)
                    }
                },
            };
            (args, reply)
        }
        Op::Move {
            src,
            dst,
            from_left,
            to_left,
        } => {
            let args = vec![
                "LMOVE".into(),
                name(*src),
                name(*dst),
                end(*from_left),
                end(*to_left),
            ];
            let popped = model
                .get_mut(src)
                .and_then(|l| if *from_left { l.pop_front() } else { l.pop_back() });
            let reply = match popped {
                None => Reply::Null,
                Some(v) => {
                    let l = model.entry(*dst).or_default();
                    if *to_left {
                        l.push_front(v.clone())
                    } else {
                        l.push_back(v.clone())
                    }
                    bulk(&v)
                }
            };
            (args, reply)
        }
        Op::Len { key } => (
            vec!["LLEN".into(), name(*key)],
            Reply::Int(model.get(key).map_or(0, |l| l.len()) as i64),
        ),
    };
    model.retain(|_, l| !l.is_empty());
    (args, reply)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn list_commands_match_a_vecdeque_model(ops in prop::collection::vec(op(), 1..60)) {
        let shared = Shared::new(BrokerConfig::default());
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut client = ClientState::new(Arc::new(ClientInfo::new(1, addr, addr)), true);
        let mut model: HashMap<usize, VecDeque<String>> = HashMap::new();
        for op in &ops {
            let (args, expected) = apply(&mut model, op);
            let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            let mut engine = shared.engine.lock();
            let got = match dispatch(&shared, &mut engine, &mut client, &args) {
                Outcome::Reply(r) => r,
                other => panic!("unexpected outcome {other:?}"),
            };
            // Compare the bytes a client would receive, in both protocols.
            for proto in [Protocol::Resp2, Protocol::Resp3] {
                let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
                got.encode(proto, &mut a);
                expected.encode(proto, &mut b);
                prop_assert_eq!(a, b, "after {:?}", op);
            }
        }
        // Final contents and the queue counters agree with the model.
        for (k, name) in KEYS.iter().enumerate() {
            let want = model.get(&k).map_or(0, |l| l.len()) as u64;
            let stats = shared.queues.queue(0, name.as_bytes());
            prop_assert_eq!(stats.map_or(0, |s| s.length), want);
        }
    }
}
