//! Reading a log back: one command at a time, strictly (`*N` then `$len` bulk strings, CRLF
//! everywhere), telling an incomplete tail apart from a corrupt byte and where it is.

use std::ops::Range;

/// The largest argument a log may hold (Redis's `proto-max-bulk-len` ceiling).
const MAX_BULK: usize = 512 * 1024 * 1024;
/// The most arguments one logged command may have.
const MAX_ARGS: usize = 1024 * 1024;

/// A byte that cannot start or continue a logged command, `at` bytes into the parsed slice.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub at: usize,
    pub reason: &'static str,
}

/// One command at the start of a buffer: its arguments as ranges of the buffer, and how many
/// bytes it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub args: Vec<Range<usize>>,
    pub len: usize,
}

/// Reads the decimal number that ends at the next CRLF from `at`; `Ok(None)` if the line is not
/// complete yet.
fn number(buf: &[u8], at: usize) -> Result<Option<(usize, usize)>, Corrupt> {
    let mut value: usize = 0;
    let mut i = at;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' => {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(usize::from(b - b'0')))
                    .ok_or(Corrupt {
                        at: i,
                        reason: "number too large",
                    })?;
                if i - at > 18 {
                    return Err(Corrupt {
                        at: i,
                        reason: "number too large",
                    });
                }
            }
            b'\r' if i > at => {
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((value, i + 2))),
                    Some(_) => Err(Corrupt {
                        at: i + 1,
                        reason: "expected '\\n'",
                    }),
                };
            }
            _ => {
                return Err(Corrupt {
                    at: i,
                    reason: "expected a digit",
                })
            }
        }
        i += 1;
    }
}

/// Parses the command at the start of `buf`: `Ok(None)` if `buf` ends before it does.
pub fn command(buf: &[u8]) -> Result<Option<Parsed>, Corrupt> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return Err(Corrupt {
            at: 0,
            reason: "expected '*' (the start of a command)",
        });
    }
    let Some((count, mut at)) = number(buf, 1)? else {
        return Ok(None);
    };
    if count == 0 || count > MAX_ARGS {
        return Err(Corrupt {
            at: 1,
            reason: "invalid number of arguments",
        });
    }
    let mut args = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => {
                return Err(Corrupt {
                    at,
                    reason: "expected '$' (a bulk string)",
                })
            }
        }
        let Some((len, start)) = number(buf, at + 1)? else {
            return Ok(None);
        };
        if len > MAX_BULK {
            return Err(Corrupt {
                at: at + 1,
                reason: "bulk string too long",
            });
        }
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(Corrupt {
                at: end,
                reason: "expected CRLF after a bulk string",
            });
        }
        args.push(start..end);
        at = end + 2;
    }
    Ok(Some(Parsed { args, len: at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(buf: &[u8], p: &Parsed) -> Vec<String> {
        p.args
            .iter()
            .map(|r| String::from_utf8_lossy(&buf[r.clone()]).into_owned())
            .collect()
    }

    #[test]
    fn commands_parse_and_report_their_length() {
        let buf = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n";
        let p = command(buf).unwrap().unwrap();
        assert_eq!(words(buf, &p), ["SELECT", "0"]);
        assert_eq!(p.len, 23);
        let q = command(&buf[p.len..]).unwrap().unwrap();
        assert_eq!(words(&buf[p.len..], &q), ["PING"]);
    }

    #[test]
    fn every_prefix_is_incomplete_not_corrupt() {
        let buf = b"*3\r\n$5\r\nRPUSH\r\n$1\r\nq\r\n$0\r\n\r\n";
        for cut in 0..buf.len() {
            assert_eq!(command(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(command(buf).unwrap().is_some());
    }

    #[test]
    fn corruption_names_the_byte() {
        assert_eq!(command(b"+OK\r\n").unwrap_err().at, 0);
        assert_eq!(command(b"*1\r\n#4\r\nPING\r\n").unwrap_err().at, 4);
        assert_eq!(command(b"*1\r\n$4\r\nPINGX\r\n").unwrap_err().at, 12);
        assert_eq!(command(b"*x\r\n").unwrap_err().at, 1);
        assert_eq!(command(b"*0\r\n").unwrap_err().at, 1);
        assert_eq!(
            command(b"*1\r\n$99999999999999999999\r\n").unwrap_err().reason,
            "number too large"
        );
    }
}
