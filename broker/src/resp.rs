//! Request parsing: RESP multibulk and inline commands, with Redis's size limits.
//!
//! Requests are a tiny subset of RESP (arrays of bulk strings, or one inline line), so we parse
//! them here rather than through a general frame decoder: it lets us enforce Redis's limits before
//! buffering a frame, accept inline commands, and hand out argument slices without copying.

use bytes::{Bytes, BytesMut};

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline request or count line.
pub const INLINE_MAX: usize = 64 * 1024;

/// Limits applied while parsing requests.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: usize,
    /// Largest element count of one multibulk request.
    pub max_multibulk_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as usize,
        }
    }
}

/// A protocol error; the connection replies `-ERR Protocol error: <text>` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub std::borrow::Cow<'static, str>);

impl ProtocolError {
    fn new(text: &'static str) -> Self {
        ProtocolError(std::borrow::Cow::Borrowed(text))
    }
}

/// What one parse step found at the front of the buffer.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A complete command (possibly empty, which callers skip).
    Command(Vec<Bytes>),
    /// More bytes are needed; `hint` is how many the buffer should hold at least.
    Incomplete { hint: usize },
}

/// Parses one request from the front of `buf`, removing its bytes when complete.
///
/// `authenticated` is false before a required AUTH: like Redis, large requests are then refused.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Parsed, ProtocolError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { hint: 0 });
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits, authenticated)
    } else {
        parse_inline(buf)
    }
}

/// The name of the multibulk command at the front of `buf`, if that much has arrived —
/// without consuming or copying anything.
pub fn peek_command_name(buf: &[u8]) -> Option<&[u8]> {
    if buf.first() != Some(&b'*') {
        return None;
    }
    let cr = find_crlf(buf, 1)?;
    let at = cr + 2;
    if buf.get(at) != Some(&b'$') {
        return None;
    }
    let cr = find_crlf(buf, at + 1)?;
    let len = usize::try_from(parse_len(buf, at + 1, cr)?).ok()?;
    buf.get(cr + 2..cr + 2 + len)
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'\r', &buf[from..]).map(|i| i + from)
}

/// Parses the signed decimal between `start` and the CR at `cr`; `None` if not a number.
fn parse_len(buf: &[u8], start: usize, cr: usize) -> Option<i64> {
    let digits = &buf[start..cr];
    let (neg, digits) = match digits.first() {
        Some(b'-') => (true, &digits[1..]),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(if neg { -n } else { n })
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Parsed, ProtocolError> {
    let Some(cr) = find_crlf(buf, 1) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::new("too big mbulk count string"));
        }
        return Ok(Parsed::Incomplete { hint: 0 });
    };
    if cr > INLINE_MAX {
        return Err(ProtocolError::new("too big mbulk count string"));
    }
    if cr + 1 >= buf.len() {
        return Ok(Parsed::Incomplete { hint: 0 });
    }
    let count = match parse_len(buf, 1, cr) {
        Some(n) if n <= limits.max_multibulk_len as i64 => n,
        _ => return Err(ProtocolError::new("invalid multibulk length")),
    };
    if !authenticated && count > 10 {
        return Err(ProtocolError::new("unauthenticated multibulk length"));
    }
    let mut pos = cr + 2;
    if count <= 0 {
        let _ = buf.split_to(pos);
        return Ok(Parsed::Command(Vec::new()));
    }
    let count = count as usize;
    let first = pos;
    // First pass: validate and find the end without storing anything.
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete { hint: 0 });
        }
        if buf[pos] != b'$' {
            return Err(expected_dollar(buf[pos]));
        }
        let Some(cr) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > INLINE_MAX {
                return Err(ProtocolError::new("too big bulk count string"));
            }
            return Ok(Parsed::Incomplete { hint: 0 });
        };
        if cr - pos > INLINE_MAX {
            return Err(ProtocolError::new("too big bulk count string"));
        }
        if cr + 1 >= buf.len() {
            return Ok(Parsed::Incomplete { hint: 0 });
        }
        let len = match parse_len(buf, pos + 1, cr) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => n as usize,
            _ => return Err(ProtocolError::new("invalid bulk length")),
        };
        if !authenticated && len > 16384 {
            return Err(ProtocolError::new("unauthenticated bulk length"));
        }
        let start = cr + 2;
        let end = start + len;
        if end + 2 > buf.len() {
            return Ok(Parsed::Incomplete { hint: end + 2 });
        }
        pos = end + 2;
    }
    // Second pass over the validated frame: slice out the arguments (no copies).
    let frame = buf.split_to(pos).freeze();
    let mut args = Vec::with_capacity(count);
    let mut at = first;
    for _ in 0..count {
        let cr = find_crlf(&frame, at + 1).unwrap_or(at + 1);
        let len = parse_len(&frame, at + 1, cr).unwrap_or(0) as usize;
        args.push(frame.slice(cr + 2..cr + 2 + len));
        at = cr + 2 + len + 2;
    }
    Ok(Parsed::Command(args))
}

fn expected_dollar(got: u8) -> ProtocolError {
    ProtocolError(format!("expected '$', got '{}'", got as char).into())
}

fn parse_inline(buf: &mut BytesMut) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(Parsed::Incomplete { hint: 0 });
    };
    if nl > INLINE_MAX {
        return Err(ProtocolError::new("too big inline request"));
    }
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let line = buf.split_to(nl + 1);
    let args = split_args(&line[..end]).ok_or(ProtocolError::new("unbalanced quotes in request"))?;
    Ok(Parsed::Command(args))
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`: spaces separate, double
/// quotes take C escapes (`\n`, `\xHH`, ...), single quotes take only `\'`. `None` on bad quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else {
                if i >= n {
                    break;
                }
                let c = line[i];
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => cur.push(c),
                }
                i += 1;
            }
        }
        args.push(Bytes::from(cur));
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Parsed, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        parse_request(&mut buf, &Limits::default(), true)
    }

    fn cmd(parts: &[&str]) -> Parsed {
        Parsed::Command(
            parts
                .iter()
                .map(|p| Bytes::copy_from_slice(p.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn multibulk_complete_and_partial() {
        assert_eq!(
            parse(b"*2\r\n$4\r\nLLEN\r\n$1\r\nq\r\n").unwrap(),
            cmd(&["LLEN", "q"])
        );
        assert!(matches!(
            parse(b"*2\r\n$4\r\nLLEN\r\n$1\r\n").unwrap(),
            Parsed::Incomplete { .. }
        ));
        assert!(matches!(parse(b"*2\r").unwrap(), Parsed::Incomplete { .. }));
    }

    #[test]
    fn inline_commands_and_quotes() {
        assert_eq!(parse(b"PING\r\n").unwrap(), cmd(&["PING"]));
        assert_eq!(parse(b"set k \"a b\\n\"\n").unwrap(), cmd(&["set", "k", "a b\n"]));
        assert_eq!(parse(b"echo 'it\\'s'\r\n").unwrap(), cmd(&["echo", "it's"]));
        assert_eq!(parse(b"echo \"\\x41\"\r\n").unwrap(), cmd(&["echo", "A"]));
        assert_eq!(parse(b"\r\n").unwrap(), cmd(&[]));
        assert_eq!(
            parse(b"echo \"abc\"d\r\n").unwrap_err(),
            ProtocolError::new("unbalanced quotes in request")
        );
        assert_eq!(
            parse(b"echo \"abc\r\n").unwrap_err(),
            ProtocolError::new("unbalanced quotes in request")
        );
    }

    #[test]
    fn limits_and_malformed_lengths() {
        assert_eq!(
            parse(b"*x\r\n").unwrap_err(),
            ProtocolError::new("invalid multibulk length")
        );
        assert_eq!(
            parse(b"*1\r\n$-5\r\n").unwrap_err(),
            ProtocolError::new("invalid bulk length")
        );
        assert_eq!(
            parse(b"*1\r\n:5\r\n").unwrap_err(),
            ProtocolError::new("expected '$', got ':'")
        );
        let mut buf = BytesMut::from(&b"*1\r\n$100\r\n"[..]);
        let limits = Limits {
            max_bulk_len: 10,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(&mut buf, &limits, true).unwrap_err(),
            ProtocolError::new("invalid bulk length")
        );
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default(), false).unwrap_err(),
            ProtocolError::new("unauthenticated multibulk length")
        );
        let long = vec![b'a'; INLINE_MAX + 10];
        assert_eq!(
            parse(&long).unwrap_err(),
            ProtocolError::new("too big inline request")
        );
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        assert_eq!(parse(b"*0\r\n").unwrap(), cmd(&[]));
        assert_eq!(parse(b"*-1\r\n").unwrap(), cmd(&[]));
    }
}
