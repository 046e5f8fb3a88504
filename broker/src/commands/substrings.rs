//! Parts of strings: SETRANGE, GETRANGE (and its old name SUBSTR), LCS.

use super::bits::{read_str, update_str};
use super::{parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use bytes::Bytes;

/// SETRANGE key offset value
pub fn setrange(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let value = ctx.args[3].clone();
    let offset = match parse_i64(&ctx.args[2]) {
        None => return Reply::error(msg::NOT_INT).into(),
        Some(o) if o < 0 => return Reply::error(msg::OFFSET_OUT_OF_RANGE).into(),
        Some(o) => o as u64,
    };
    let current = match read_str(ctx, &key) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if value.is_empty() {
        // Nothing to write: the length as it is, and no key is created.
        return Reply::Int(current.map_or(0, |s| s.len() as i64)).into();
    }
    let max = ctx.shared.config.read().proto_max_bulk_len as u64;
    if offset.saturating_add(value.len() as u64) > max {
        return Reply::error(msg::STRING_TOO_LONG).into();
    }
    let start = offset as usize;
    let end = start + value.len();
    match update_str(ctx, &key, end, |buf| {
        buf[start..end].copy_from_slice(&value);
        buf.len()
    }) {
        Ok(len) => {
            ctx.notify(EventClass::String, "setrange", &key);
            Reply::Int(len as i64).into()
        }
        Err(e) => e,
    }
}

/// GETRANGE key start end (and SUBSTR): inclusive, negative positions from the end.
pub fn getrange(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let (Some(start), Some(end)) = (parse_i64(&ctx.args[2]), parse_i64(&ctx.args[3])) else {
        return Reply::error(msg::NOT_INT).into();
    };
    let s = match read_str(ctx, &key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Bulk(Bytes::new()).into(),
        Err(e) => return e,
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::Bulk(Bytes::new()).into();
    }
    let start = if start < 0 {
        len.saturating_add(start)
    } else {
        start
    }
    .max(0);
    let end = if end < 0 { len.saturating_add(end) } else { end }
        .max(0)
        .min(len - 1);
    if start > end || len == 0 {
        return Reply::Bulk(Bytes::new()).into();
    }
    Reply::Bulk(s.slice(start as usize..=end as usize)).into()
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
pub fn lcs(ctx: &mut Ctx) -> Outcome {
    let (ka, kb) = (ctx.args[1].clone(), ctx.args[2].clone());
    let mut strings = [Bytes::new(), Bytes::new()];
    for (slot, key) in strings.iter_mut().zip([&ka, &kb]) {
        match ctx.lookup(key) {
            None => {}
            Some(Value::Str(s)) => *slot = s.clone(),
            Some(_) => return Reply::error(msg::LCS_NOT_STRINGS).into(),
        }
    }
    let (mut idx, mut len, mut withmatchlen, mut minmatchlen) = (false, false, false, 0u64);
    let mut j = 3;
    while j < ctx.args.len() {
        let opt = &ctx.args[j];
        if opt.eq_ignore_ascii_case(b"idx") {
            idx = true;
        } else if opt.eq_ignore_ascii_case(b"len") {
            len = true;
        } else if opt.eq_ignore_ascii_case(b"withmatchlen") {
            withmatchlen = true;
        } else if opt.eq_ignore_ascii_case(b"minmatchlen") && j + 1 < ctx.args.len() {
            let Some(n) = parse_i64(&ctx.args[j + 1]) else {
                return Reply::error(msg::NOT_INT).into();
            };
            minmatchlen = n.max(0) as u64;
            j += 1;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        j += 1;
    }
    if idx && len {
        return Reply::error(msg::LCS_IDX_AND_LEN).into();
    }
    let [a, b] = strings;
    let (alen, blen) = (a.len(), b.len());
    // The table is (alen+1)×(blen+1) u32s; Redis refuses one larger than proto-max-bulk-len.
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells.saturating_mul(4) > ctx.shared.config.read().proto_max_bulk_len as u64 {
        return Reply::error(msg::LCS_TOO_BIG).into();
    }
    let width = blen + 1;
    let mut table = Vec::new();
    if table.try_reserve_exact(cells as usize).is_err() {
        return Reply::error(msg::LCS_NO_MEMORY).into();
    }
    table.resize(cells as usize, 0u32);
    for i in 1..=alen {
        for k in 1..=blen {
            table[i * width + k] = if a[i - 1] == b[k - 1] {
                table[(i - 1) * width + k - 1] + 1
            } else {
                table[(i - 1) * width + k].max(table[i * width + k - 1])
            };
        }
    }
    let total = table[alen * width + blen];
    if len {
        return Reply::Int(i64::from(total)).into();
    }
    // Walk back from the end, collecting the common subsequence and its contiguous runs
    // (the runs come out last first, as Redis emits them).
    let mut common = vec![0u8; total as usize];
    let mut left = total as usize;
    let mut matches = Vec::new();
    let mut run: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    let (mut i, mut k) = (alen, blen);
    let emit = |run: &mut Option<(usize, usize, usize, usize)>, matches: &mut Vec<Reply>| {
        if let Some((a0, a1, b0, b1)) = run.take() {
            let n = (a1 - a0 + 1) as u64;
            if minmatchlen == 0 || n >= minmatchlen {
                let pair =
                    |x: usize, y: usize| Reply::Array(vec![Reply::Int(x as i64), Reply::Int(y as i64)]);
                let mut m = vec![pair(a0, a1), pair(b0, b1)];
                if withmatchlen {
                    m.push(Reply::Int(n as i64));
                }
                matches.push(Reply::Array(m));
            }
        }
    };
    while i > 0 && k > 0 {
        if a[i - 1] == b[k - 1] {
            left -= 1;
            common[left] = a[i - 1];
            run = match run {
                Some((a0, a1, b0, b1)) if a0 == i && b0 == k => Some((a0 - 1, a1, b0 - 1, b1)),
                Some(_) => {
                    emit(&mut run, &mut matches);
                    None
                }
                None => Some((i - 1, i - 1, k - 1, k - 1)),
            };
            i -= 1;
            k -= 1;
            if run.is_some_and(|(a0, _, b0, _)| a0 == 0 || b0 == 0) {
                emit(&mut run, &mut matches);
            }
        } else {
            if table[(i - 1) * width + k] > table[i * width + k - 1] {
                i -= 1;
            } else {
                k -= 1;
            }
            emit(&mut run, &mut matches);
        }
    }
    if !idx {
        return Reply::Bulk(Bytes::from(common)).into();
    }
    Reply::Map(vec![
        (Reply::bulk("matches"), Reply::Array(matches)),
        (Reply::bulk("len"), Reply::Int(i64::from(total))),
    ])
    .into()
}
