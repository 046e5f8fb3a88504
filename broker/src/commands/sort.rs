//! SORT and SORT_RO: order a value's elements (numerically or lexicographically, by the
//! elements or by keys a pattern names), select a LIMIT window, fetch GET patterns, STORE.
//!
//! Which types SORT applies to and what their elements are comes from
//! `values::sortable_elements`; hash fields (`pattern->field`) from `values::hash_field`.

use super::{parse_i64, values, Ctx, Outcome};
use crate::db::{End, Value};
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use bytes::Bytes;
use std::cmp::Ordering;

/// What SORT was asked for.
struct SortRequest {
    desc: bool,
    alpha: bool,
    /// `(offset, count)`; a negative count means "to the end".
    limit: Option<(i64, i64)>,
    by: Option<Bytes>,
    /// BY a pattern without `*`: keep the value's own order.
    dont_sort: bool,
    gets: Vec<Bytes>,
    store: Option<Bytes>,
}

fn parse(args: &[Bytes], readonly: bool) -> Result<SortRequest, Reply> {
    let mut req = SortRequest {
        desc: false,
        alpha: false,
        limit: None,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
        store: None,
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let opt = &args[j];
        if opt.eq_ignore_ascii_case(b"asc") {
            req.desc = false;
        } else if opt.eq_ignore_ascii_case(b"desc") {
            req.desc = true;
        } else if opt.eq_ignore_ascii_case(b"alpha") {
            req.alpha = true;
        } else if opt.eq_ignore_ascii_case(b"limit") && left >= 2 {
            let (Some(offset), Some(count)) = (parse_i64(&args[j + 1]), parse_i64(&args[j + 2])) else {
                return Err(Reply::error(msg::NOT_INT));
            };
            req.limit = Some((offset, count));
            j += 2;
        } else if !readonly && opt.eq_ignore_ascii_case(b"store") && left >= 1 {
            req.store = Some(args[j + 1].clone());
            j += 1;
        } else if opt.eq_ignore_ascii_case(b"by") && left >= 1 {
            let pattern = args[j + 1].clone();
            req.dont_sort = !pattern.contains(&b'*');
            req.by = Some(pattern);
            j += 1;
        } else if opt.eq_ignore_ascii_case(b"get") && left >= 1 {
            req.gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return Err(Reply::error(msg::SYNTAX));
        }
        j += 1;
    }
    Ok(req)
}

/// The value a pattern names for one element: `#` is the element itself; otherwise the first
/// `*` is replaced by the element to name a key, whose string value is returned, or with a
/// `->field` suffix, that field of the hash at the key. `None` when there is no such value.
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(arrow) if arrow + 2 < after.len() => (&after[..arrow], Some(&after[arrow + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + rest.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(rest);
    let value = ctx.lookup(&Bytes::from(key))?;
    match field {
        Some(f) => values::hash_field(value, f),
        None => match value {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        },
    }
}

/// A number the way C's `strtod` reads a whole string, as SORT reads its weights: leading
/// white space is skipped, the empty string is 0, and anything left unread, NaN or an overflow
/// is an error (`None`).
fn sort_score(s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    let start = s.iter().position(|b| !b.is_ascii_whitespace())?;
    let text = std::str::from_utf8(&s[start..]).ok()?;
    let lower = text.to_ascii_lowercase();
    let named_infinity = matches!(lower.trim_start_matches(['+', '-']), "inf" | "infinity");
    let x: f64 = text.parse().ok()?;
    if x.is_nan() || (x.is_infinite() && !named_infinity) {
        return None;
    }
    Some(x)
}

struct Entry {
    element: Bytes,
    score: f64,
    /// The BY value compared with ALPHA (absent sorts first).
    by: Option<Bytes>,
}

fn sort_impl(ctx: &mut Ctx, readonly: bool) -> Outcome {
    let mut req = match parse(ctx.args, readonly) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let key = ctx.args[1].clone();
    let mut ordered = true;
    let elements = match ctx.lookup(&key) {
        None => Vec::new(),
        Some(v) => match values::sortable_elements(v) {
            Some(e) => {
                ordered = values::has_stable_order(v);
                if req.dont_sort && !ordered && req.store.is_some() {
                    // An unordered value must come out the same way on every replay of a
                    // stored result: Redis sorts it lexicographically then.
                    req.dont_sort = false;
                    req.alpha = true;
                    req.by = None;
                }
                e
            }
            None => return Reply::error(msg::WRONGTYPE).into(),
        },
    };
    let mut elements = elements;
    if req.dont_sort && req.desc && ordered {
        // Unsorted, a list or sorted set still honours DESC: it is read from its other end.
        elements.reverse();
    }
    let len = elements.len() as i64;
    let (mut start, mut end) = match req.limit {
        None => (0, len - 1),
        Some((offset, count)) => {
            let start = offset.max(0);
            let end = if count < 0 {
                len - 1
            } else {
                start.saturating_add(count) - 1
            };
            (start, end)
        }
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);
    let mut entries: Vec<Entry> = elements
        .into_iter()
        .map(|element| Entry {
            element,
            score: 0.0,
            by: None,
        })
        .collect();
    if !req.dont_sort {
        let mut bad_score = false;
        for e in entries.iter_mut() {
            let by = match &req.by {
                Some(p) => match lookup_by_pattern(ctx, p, &e.element) {
                    Some(v) => v,
                    None => continue,
                },
                None => e.element.clone(),
            };
            if req.alpha {
                if req.by.is_some() {
                    e.by = Some(by);
                }
            } else {
                match sort_score(&by) {
                    Some(x) => e.score = x,
                    None => bad_score = true,
                }
            }
        }
        if bad_score {
            return Reply::error(msg::SORT_SCORE).into();
        }
        let (alpha, by_pattern, desc) = (req.alpha, req.by.is_some(), req.desc);
        entries.sort_by(|a, b| {
            let ord = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.element.cmp(&b.element))
            } else if by_pattern {
                a.by.cmp(&b.by)
            } else {
                a.element.cmp(&b.element)
            };
            if desc {
                ord.reverse()
            } else {
                ord
            }
        });
    }
    let window: &[Entry] = if start <= end && start >= 0 {
        &entries[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut out: Vec<Option<Bytes>> = Vec::new();
    let window: Vec<Bytes> = window.iter().map(|e| e.element.clone()).collect();
    for element in &window {
        if req.gets.is_empty() {
            out.push(Some(element.clone()));
        }
        for pattern in &req.gets {
            out.push(lookup_by_pattern(ctx, pattern, element));
        }
    }
    let Some(dst) = req.store else {
        return Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Null, Reply::Bulk))
                .collect(),
        )
        .into();
    };
    let db = ctx.client.db;
    let n = out.len() as i64;
    ctx.engine.expire_if_due(db, &dst, ctx.now_ms);
    let existed = ctx.engine.keyspace[db].remove(&dst).is_some();
    if n > 0 {
        let stored: Vec<Bytes> = out.into_iter().map(Option::unwrap_or_default).collect();
        ctx.engine.push(db, &dst, End::Right, &stored);
        ctx.notify(EventClass::List, "sortstore", &dst);
    } else if existed {
        ctx.engine.touch(db, &dst);
        ctx.notify(EventClass::Generic, "del", &dst);
    }
    Reply::Int(n).into()
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE dst]
pub fn sort(ctx: &mut Ctx) -> Outcome {
    sort_impl(ctx, false)
}

/// SORT_RO: SORT without STORE.
pub fn sort_ro(ctx: &mut Ctx) -> Outcome {
    sort_impl(ctx, true)
}

#[cfg(test)]
mod tests {
    use super::sort_score;

    #[test]
    fn weights_read_as_strtod_reads_them() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b" 1.5"), Some(1.5));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1x"), None);
        assert_eq!(sort_score(b"   "), None);
    }
}
