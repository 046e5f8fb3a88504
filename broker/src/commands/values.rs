//! What the type-independent commands (OBJECT, COPY, MEMORY USAGE, SORT, DUMP) need of each
//! value type, with one match arm per type: a new type adds its arm here and nothing else.

use crate::db::Value;
use crate::metrics::QueueCounters;
use bytes::Bytes;
use std::sync::Arc;

/// Redis's OBJECT ENCODING name for the value's representation. Strings are named from
/// their content (`int`, `embstr` up to 44 bytes, `raw` beyond): Redis also answers `raw` for
/// a short string that APPEND, SETRANGE or SETBIT changed in place, which is not tracked here.
/// Lists are `quicklist`, as every list is in Redis 7.0.
pub fn encoding(value: &Value) -> &'static str {
    match value {
        Value::Str(s) if int_encodable(s) => "int",
        Value::Str(s) if s.len() <= EMBSTR_MAX => "embstr",
        Value::Str(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Hash(h) => h.encoding(),
        Value::Set(set) => set.encoding(),
        Value::Stream(st) => st.encoding(),
        Value::ZSet(z) => z.encoding(),
    }
}

/// OBJECT REFCOUNT: Redis shares the integers 0..9999 (reporting `INT_MAX` references for
/// them); every other value has one owner.
pub fn refcount(value: &Value) -> i64 {
    match value {
        Value::Str(s) if int_encodable(s) && shared_integer(s) => i64::from(i32::MAX),
        _ => 1,
    }
}

/// An independent copy of `value` for COPY; a list copy counts as the queue `counters` gives
/// (the destination key's), keeping each element's enqueue time.
pub fn duplicate(value: &Value, counters: impl FnOnce() -> Arc<QueueCounters>) -> Value {
    match value {
        Value::Str(s) => Value::Str(s.clone()),
        Value::List(l) => {
            let mut copy = l.duplicate();
            copy.retarget(counters());
            Value::List(copy)
        }
        Value::Hash(h) => Value::Hash(h.duplicate()),
        Value::Set(set) => Value::Set(set.duplicate()),
        Value::Stream(st) => Value::Stream(Box::new(st.duplicate())),
        Value::ZSet(z) => Value::ZSet(z.duplicate()),
    }
}

/// The elements SORT orders, in the value's own order; `None` if SORT does not apply to this
/// type (Redis: WRONGTYPE). Lists now; sets and sorted sets add an arm.
pub fn sortable_elements(value: &Value) -> Option<Vec<Bytes>> {
    match value {
        Value::List(l) => Some(l.items.iter().map(Bytes::copy_from_slice).collect()),
        Value::Set(set) => Some(set.iter().map(|m| Bytes::copy_from_slice(&m)).collect()),
        // Rank order.
        Value::ZSet(z) => Some(z.iter().map(|(m, _)| Bytes::copy_from_slice(m)).collect()),
        Value::Str(_) | Value::Hash(_) | Value::Stream(_) => None,
    }
}

/// Whether the value lists its elements in an order of its own that every replay reproduces
/// (lists, sorted sets); SORT … BY nosort STORE sorts the others (sets) lexicographically.
/// DESC reads an ordered value from its other end when unsorted. A sorted set's arm must also
/// make `sortable_elements` give rank order.
pub fn has_stable_order(value: &Value) -> bool {
    match value {
        Value::Str(_) | Value::List(_) | Value::Hash(_) | Value::Stream(_) | Value::ZSet(_) => true,
        Value::Set(_) => false,
    }
}

/// The value of `field` in a hash, for SORT's `pattern->field`; `None` for other types.
pub fn hash_field(value: &Value, field: &[u8]) -> Option<Bytes> {
    match value {
        Value::Hash(h) => h.get(field).map(Bytes::copy_from_slice),
        _ => None,
    }
}

/// MEMORY USAGE of a key and its value, in the model Redis 7.0 (with jemalloc) reports, so
/// numbers agree with what tools expect from redis-server: the dictionary entry, the key's
/// sds string and the value; a list's nodes are sampled (`samples` of them, 0 = all) and
/// scaled to the whole list as Redis does. It estimates Redis's footprint for the data, not
/// this process's (which `INFO memory` reports as measured).
pub fn memory_usage(key: &[u8], value: &Value, samples: usize) -> u64 {
    const DICT_ENTRY: u64 = 24;
    const ROBJ: u64 = 16;
    let value_size = match value {
        Value::Str(s) if int_encodable(s) => ROBJ,
        Value::Str(s) if s.len() <= EMBSTR_MAX => jemalloc_class(ROBJ + 3 + s.len() as u64 + 1),
        Value::Str(s) => ROBJ + jemalloc_class(sds_size(s.len())),
        Value::List(l) => ROBJ + QUICKLIST + quicklist_nodes_size(l.items.iter(), samples),
        Value::Hash(h) if h.encoding() == "listpack" => {
            ROBJ + jemalloc_class(listpack_size(h.iter().flat_map(|(f, v)| [f, v])))
        }
        Value::Hash(h) => {
            ROBJ + dict_size(
                h.len(),
                samples,
                h.iter().map(|(f, v)| sds_alloc(f.len()) + sds_alloc(v.len())),
            )
        }
        Value::Set(set) if set.encoding() == "intset" => {
            let width = set.iter().map(|m| intset_width(&m)).max().unwrap_or(2);
            ROBJ + jemalloc_class(8 + width * set.len() as u64)
        }
        Value::Set(set) => ROBJ + dict_size(set.len(), samples, set.iter().map(|m| sds_alloc(m.len()))),
        Value::Stream(st) => ROBJ + stream_size(st, samples),
        Value::ZSet(z) if z.encoding() == "listpack" => {
            let scores: Vec<String> = z.iter().map(|(_, s)| crate::reply::format_double(s)).collect();
            let entries = z.iter().zip(&scores).flat_map(|((m, _), s)| [m, s.as_bytes()]);
            ROBJ + jemalloc_class(listpack_size(entries))
        }
        Value::ZSet(z) => {
            // zset, zskiplist and its 32-level header node, then per member its sds string,
            // dict entry and a skiplist node (about 1.33 levels on average).
            const ZSET_HEADERS: u64 = 16 + 32 + 640;
            const NODE: u64 = 64;
            let sizes = z.iter().map(|(m, _)| sds_alloc(m.len()) + NODE);
            ROBJ + ZSET_HEADERS + dict_size(z.len(), samples, sizes)
        }
    };
    DICT_ENTRY + jemalloc_class(sds_size(key.len())) + value_size
}

/// `sizeof(dict)` and `sizeof(dictEntry)` in Redis 7.0.
const DICT: u64 = 56;
const DICT_ENTRY_SIZE: u64 = 24;

/// A dict-encoded value as Redis 7.0 sizes it: the dict, its bucket array (the power of two
/// at least as large as the element count, 4 at least), and the entries with their sds
/// strings (`element_sizes`), sampled (`samples` of them, 0 = all) and scaled to the count.
fn dict_size(len: usize, samples: usize, element_sizes: impl Iterator<Item = u64>) -> u64 {
    let slots = len.max(4).next_power_of_two() as u64;
    let take = if samples == 0 { len } else { samples.min(len) };
    let (mut sum, mut n) = (0u64, 0usize);
    for size in element_sizes.take(take) {
        sum += DICT_ENTRY_SIZE + size;
        n += 1;
    }
    let elements = if n == 0 {
        0
    } else {
        (sum as f64 / n as f64 * len as f64) as u64
    };
    DICT + 8 * slots + elements
}

/// The allocation of an sds string of `len` bytes.
fn sds_alloc(len: usize) -> u64 {
    jemalloc_class(sds_size(len))
}

/// Bytes of a listpack holding `entries`: its header, the entries, the end byte.
fn listpack_size<'a>(entries: impl Iterator<Item = &'a [u8]>) -> u64 {
    (6 + entries.map(listpack_entry_size).sum::<usize>() + 1) as u64
}

/// A stream as Redis 7.0 lays it out, estimated: the stream struct, one radix-tree node and
/// one listpack per 100 entries, each entry its id delta, flags and fields as listpack
/// entries (sampled over `samples` nodes' worth of entries, 0 = all, scaled to the length).
/// Consumer groups are not counted. An estimate of Redis's footprint, not an exact model.
fn stream_size(st: &crate::types::stream::Stream, samples: usize) -> u64 {
    const STREAM: u64 = 64;
    const RAX_NODE: u64 = 48;
    const ENTRIES_PER_NODE: usize = 100;
    let len = st.len();
    let take = if samples == 0 {
        len
    } else {
        samples.saturating_mul(ENTRIES_PER_NODE).min(len)
    };
    let last = st.last().map(|(id, _)| id);
    let mut sum = 0u64;
    let mut n = 0usize;
    if let Some(last) = last {
        for (_, fields) in st.range(st.first_id(), last).take(take) {
            let fields = fields.to_vec();
            // Flags, id deltas, field count and the back-length of the entry's count.
            sum += 4 + fields.iter().map(|f| listpack_entry_size(f) as u64).sum::<u64>();
            n += 1;
        }
    }
    let entries = if n == 0 {
        0
    } else {
        (sum as f64 / n as f64 * len as f64) as u64
    };
    let nodes = len.div_ceil(ENTRIES_PER_NODE) as u64;
    STREAM + nodes * (RAX_NODE + 7) + entries
}

/// Bytes an intset gives each member for the widest of them.
fn intset_width(member: &[u8]) -> u64 {
    match canonical_i64(member) {
        Some(n) if i16::try_from(n).is_ok() => 2,
        Some(n) if i32::try_from(n).is_ok() => 4,
        _ => 8,
    }
}

/// Longest string Redis keeps in one allocation with its object header.
const EMBSTR_MAX: usize = 44;
/// `sizeof(quicklist)` and `sizeof(quicklistNode)` in Redis 7.0.
const QUICKLIST: u64 = 40;
const QUICKLIST_NODE: u64 = 40;
/// A quicklist node's listpack grows to 8 KB (`list-max-listpack-size -2`).
const NODE_LIMIT: usize = 8192;

/// Whether Redis stores this string as an integer: a canonical decimal `long` of at most 20
/// characters (no sign `+`, no leading zeros, no spaces).
fn int_encodable(s: &[u8]) -> bool {
    s.len() <= 20 && canonical_i64(s).is_some()
}

fn shared_integer(s: &[u8]) -> bool {
    canonical_i64(s).is_some_and(|n| (0..10_000).contains(&n))
}

/// The integer a string spells exactly as Redis would print it back.
pub(super) fn canonical_i64(s: &[u8]) -> Option<i64> {
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(n).as_bytes() == s).then_some(n)
}

/// Bytes of an sds string of `len` bytes: the smallest header that holds the length, the
/// data, the terminating zero.
fn sds_size(len: usize) -> u64 {
    let header = match len {
        0..32 => 1,
        32..256 => 3,
        256..65_536 => 5,
        _ => 9,
    };
    (header + len + 1) as u64
}

/// The size class jemalloc (16-byte quantum) serves a request of `n` bytes from.
fn jemalloc_class(n: u64) -> u64 {
    match n {
        0..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            // Four classes per doubling: 160, 192, 224, 256, 320, 384, …
            let step = n.next_power_of_two() / 8;
            n.div_ceil(step) * step
        }
    }
}

/// Bytes one element takes in a listpack: encoding byte(s), data, back-length.
fn listpack_entry_size(e: &[u8]) -> usize {
    let body = match canonical_i64(e).filter(|_| e.len() <= 20) {
        Some(n) if (0..=127).contains(&n) => 1,
        Some(n) if (-4096..=4095).contains(&n) => 2,
        Some(n) if i16::try_from(n).is_ok() => 3,
        Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => 4,
        Some(n) if i32::try_from(n).is_ok() => 5,
        Some(_) => 9,
        None if e.len() < 64 => 1 + e.len(),
        None if e.len() < 4096 => 2 + e.len(),
        None => 5 + e.len(),
    };
    let backlen = match body {
        0..128 => 1,
        128..16_383 => 2,
        16_383..2_097_151 => 3,
        2_097_151..268_435_455 => 4,
        _ => 5,
    };
    body + backlen
}

/// The quicklist nodes of a list as Redis builds them by appending (a node takes elements
/// while its listpack stays within the limit), sampled as MEMORY USAGE samples them.
fn quicklist_nodes_size<'a>(items: impl Iterator<Item = &'a [u8]>, samples: usize) -> u64 {
    const LISTPACK_EMPTY: usize = 7;
    let mut nodes: Vec<u64> = Vec::new();
    let mut current: Option<usize> = None;
    for item in items {
        let len = item.len();
        let fits = current.is_some_and(|sz| sz + len + 8 <= NODE_LIMIT);
        if !fits {
            if let Some(sz) = current.take() {
                nodes.push(sz as u64);
            }
            current = Some(LISTPACK_EMPTY);
        }
        if let Some(sz) = current.as_mut() {
            *sz += listpack_entry_size(item);
        }
    }
    if let Some(sz) = current {
        nodes.push(sz as u64);
    }
    let sampled = if samples == 0 {
        nodes.len()
    } else {
        samples.min(nodes.len())
    };
    if sampled == 0 {
        return 0;
    }
    let total: u64 = nodes[..sampled]
        .iter()
        .map(|&sz| QUICKLIST_NODE + jemalloc_class(sz))
        .sum();
    // Redis scales the sampled average to the node count in floating point, then truncates.
    (total as f64 / sampled as f64 * nodes.len() as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_follow_jemalloc() {
        let cases = [
            (1, 8),
            (8, 8),
            (9, 16),
            (17, 32),
            (33, 48),
            (128, 128),
            (129, 160),
            (161, 192),
            (257, 320),
            (1025, 1280),
        ];
        for (n, class) in cases {
            assert_eq!(jemalloc_class(n), class, "{n}");
        }
    }

    #[test]
    fn strings_are_encoded_as_redis_names_them() {
        let v = |s: &str| Value::Str(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(encoding(&v("123")), "int");
        assert_eq!(encoding(&v("0123")), "embstr");
        assert_eq!(encoding(&v("+1")), "embstr");
        assert_eq!(encoding(&v(&"x".repeat(44))), "embstr");
        assert_eq!(encoding(&v(&"x".repeat(45))), "raw");
        assert_eq!(refcount(&v("9999")), i64::from(i32::MAX));
        assert_eq!(refcount(&v("10000")), 1);
    }
}
