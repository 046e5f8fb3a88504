//! Argument parsing shared by the command families: integers, floats and timeouts as Redis
//! reads them, list ends, and glob patterns.

use crate::db::End;
use crate::reply::{msg, Reply};
use std::time::Duration;

/// Parses an integer exactly as Redis's `string2ll` (no spaces, no `+`, no leading zeros).
/// The most elements a negative count (picks with repetition) may ask of SRANDMEMBER,
/// HRANDFIELD and ZRANDMEMBER. Redis writes such a reply out as it draws; here a reply is built
/// whole before it is written, so `HRANDFIELD h -9223372036854775807` would try to allocate
/// exabytes and abort the process. Larger counts are refused with Redis's range error.
pub const MAX_REPEATED_PICKS: u64 = 1 << 20;

/// Refuses a negative random-pick count beyond [`MAX_REPEATED_PICKS`].
pub fn check_repeated_picks(count: i64) -> Result<(), Reply> {
    if count < 0 && count.unsigned_abs() > MAX_REPEATED_PICKS {
        return Err(Reply::error(msg::OUT_OF_RANGE));
    }
    Ok(())
}

pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Parses an integer argument or returns Redis's "not an integer" error.
pub fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(|| Reply::error(msg::NOT_INT))
}

/// Parses a float as Redis's `strtold`-based helpers do (no spaces, no NaN).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v: f64 = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("nan") || lower.starts_with("0x") {
                return None;
            }
            lower.parse().ok()?
        }
    };
    Some(v)
}

/// Parses a blocking timeout in seconds: `0` means forever.
pub fn timeout_arg(b: &[u8]) -> Result<Option<Duration>, Reply> {
    let v = parse_f64(b).ok_or_else(|| Reply::error(msg::TIMEOUT_NOT_FLOAT))?;
    if v < 0.0 {
        return Err(Reply::error(msg::TIMEOUT_NEGATIVE));
    }
    if !v.is_finite() || v * 1000.0 > i64::MAX as f64 / 2.0 {
        return Err(Reply::error(msg::TIMEOUT_OUT_OF_RANGE));
    }
    let ms = (v * 1000.0) as u64;
    Ok(if ms == 0 && v == 0.0 {
        None
    } else {
        Some(Duration::from_millis(ms.max(1)))
    })
}

/// `LEFT`/`RIGHT` argument.
pub fn end_arg(b: &[u8]) -> Result<End, Reply> {
    if b.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if b.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        Err(Reply::error(msg::SYNTAX))
    }
}

/// Parsed `numkeys key [key ...] WHERE [COUNT count]` of LMPOP/BLMPOP (WHERE is LEFT|RIGHT) and
/// ZMPOP/BZMPOP (MIN|MAX): the keys, `which(WHERE)`, the count (1 if not given).
pub fn mpop_args<W>(
    args: &[bytes::Bytes],
    which: impl Fn(&[u8]) -> Result<W, Reply>,
) -> Result<(Vec<bytes::Bytes>, W, usize), Reply> {
    let numkeys = match parse_i64(&args[0]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(Reply::error(msg::NUMKEYS_POSITIVE)),
    };
    // Redis reports a missing WHERE after the keys as a syntax error.
    if numkeys >= args.len() - 1 {
        return Err(Reply::error(msg::SYNTAX));
    }
    let keys = args[1..=numkeys].to_vec();
    let rest = &args[numkeys + 1..];
    let side = which(&rest[0])?;
    let mut count = None;
    let mut i = 1;
    while i < rest.len() {
        if rest[i].eq_ignore_ascii_case(b"count") && i + 1 < rest.len() && count.is_none() {
            // Redis words a count that is not a positive integer (or not a number at all,
            // or out of range) the same way.
            count = match parse_i64(&rest[i + 1]) {
                Some(c) if c > 0 => Some(c as usize),
                _ => return Err(Reply::error(msg::COUNT_ZERO)),
            };
            i += 2;
        } else {
            return Err(Reply::error(msg::SYNTAX));
        }
    }
    Ok((keys, side, count.unwrap_or(1)))
}

pub use crate::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"9223372036854775808"[..],
            b"+1",
            b" 1",
            b"01",
            b"-0",
            b"",
            b"1.0",
            b"-",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout_arg(b"0").unwrap(), None);
        assert_eq!(timeout_arg(b"1.0").unwrap(), Some(Duration::from_millis(1000)));
        assert_eq!(timeout_arg(b"0.01").unwrap(), Some(Duration::from_millis(10)));
        assert_eq!(
            timeout_arg(b"-1").unwrap_err(),
            Reply::error(msg::TIMEOUT_NEGATIVE)
        );
        assert_eq!(
            timeout_arg(b"abc").unwrap_err(),
            Reply::error(msg::TIMEOUT_NOT_FLOAT)
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"q*", b"queue", false));
        assert!(!glob_match(b"q*", b"work", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-c]llo", b"hbllo", false));
        assert!(glob_match(
            b"worker_queue:processing:*",
            b"worker_queue:processing:w1",
            false
        ));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(glob_match(b"*x*y", b"axbxcy", false));
    }
}
