//! The fuzz targets, shared by the seeded tester and the coverage-guided fuzzer: each takes
//! its decisions from a [`Choices`] and reports a [`Finding`] when a property fails.

use super::choices::Choices;
use super::containers;
use super::grammar::{self, Options};
use super::{check_replies, Harness};
use crate::reply::Protocol;
use crate::resp::{parse_request, peek_command_name, Limits, Parsed, ProtocolError, INLINE_MAX};
use bytes::{Bytes, BytesMut};
use std::fmt::Write;

/// A property that failed, with the input that made it fail (as readable text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub target: &'static str,
    pub message: String,
    pub input: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}\ninput:\n{}", self.target, self.message, self.input)
    }
}

// ---- request parser -------------------------------------------------------------------------

/// One parser input: bytes as a client sends them, the points where reads split them, and the
/// parser's settings.
#[derive(Debug, Clone)]
pub struct ParserCase {
    pub bytes: Vec<u8>,
    /// Offsets (ascending) where the bytes are cut into separate reads.
    pub splits: Vec<usize>,
    pub limits: Limits,
    pub authenticated: bool,
}

fn settings(c: &mut impl Choices) -> (Limits, bool) {
    let limits = if c.chance(30) {
        Limits {
            max_bulk_len: *c.pick(&[0, 1, 10, 16384, 16385]),
            max_multibulk_len: *c.pick(&[0, 1, 3, 1024]),
        }
    } else {
        Limits::default()
    };
    (limits, !c.chance(20))
}

fn cut_points(c: &mut impl Choices, len: usize) -> Vec<usize> {
    let mut splits: Vec<usize> = (0..c.below(8)).map(|_| c.below(len + 1)).collect();
    splits.sort_unstable();
    splits.dedup();
    splits
}

impl ParserCase {
    /// Settings and cut points from the first decisions, then the rest of a fuzzer's input as
    /// the bytes themselves (coverage guidance finds the structure).
    pub fn raw(data: &[u8]) -> ParserCase {
        let mut c = super::ByteChoices::new(data);
        let (limits, authenticated) = settings(&mut c);
        let n_splits = c.below(8);
        let raw_splits: Vec<usize> = (0..n_splits).map(|_| c.below(1 << 16)).collect();
        let bytes = c.rest().to_vec();
        let mut splits: Vec<usize> = raw_splits.into_iter().map(|s| s % (bytes.len() + 1)).collect();
        splits.sort_unstable();
        splits.dedup();
        ParserCase {
            bytes,
            splits,
            limits,
            authenticated,
        }
    }

    /// Requests built from pieces (valid frames, inline lines, damaged frames, huge and
    /// negative counts), so that a seeded run reaches every branch without coverage guidance.
    pub fn structured(c: &mut impl Choices) -> ParserCase {
        let (limits, authenticated) = settings(c);
        let mut bytes = Vec::new();
        for _ in 0..1 + c.below(6) {
            frame(c, &mut bytes);
        }
        let splits = cut_points(c, bytes.len());
        ParserCase {
            bytes,
            splits,
            limits,
            authenticated,
        }
    }
}

fn frame(c: &mut impl Choices, out: &mut Vec<u8>) {
    let start = out.len();
    // Weights out of 40: oversized lines are rare, each costs 64 KiB to parse twice.
    match c.below(40) {
        0..=19 => {
            let args = grammar::command(c, 0, Options::default());
            let _ = write!(Adapter(out), "*{}\r\n", args.len());
            for a in &args {
                let _ = write!(Adapter(out), "${}\r\n", a.len());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        20..=27 => {
            // An inline command, quotes and escapes included.
            let parts = [
                &b"PING"[..],
                b"\"a b\"",
                b"'it\\'s'",
                b"\"\\x41\\n\"",
                b"\"unterminated",
                b"x\"y\"",
                b"",
                b"\t",
                b"\"\\x4\"",
            ];
            for _ in 0..1 + c.below(4) {
                out.extend_from_slice(c.pick::<&[u8]>(&parts));
                out.push(b' ');
            }
            out.extend_from_slice(c.pick::<&[u8]>(&[&b"\r\n"[..], b"\n", b"\r"]));
        }
        28..=33 => {
            // Counts and lengths at the edges.
            let counts = [
                "-1",
                "0",
                "1",
                "10",
                "11",
                "-5",
                "2147483647",
                "2147483648",
                "999999999999999999",
                "9999999999999999999",
                "x",
                "",
                "+1",
                " 1",
                "1 ",
            ];
            let _ = write!(Adapter(out), "*{}\r\n", c.pick(&counts));
            let _ = write!(Adapter(out), "${}\r\n", c.pick(&counts));
            out.extend_from_slice(c.pick::<&[u8]>(&[&b"PING\r\n"[..], b"", b"\r\n", b"abc"]));
        }
        34 => {
            // Oversized count or inline lines, near the 64 KiB limit.
            let n = INLINE_MAX - 2 + c.below(5);
            match c.below(3) {
                0 => out.push(b'*'),
                1 => out.extend_from_slice(b"*1\r\n$"),
                _ => {}
            }
            out.resize(out.len() + n, b'1');
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend(c.bytes(24)),
    }
    if c.chance(15) && out.len() > start {
        // Damage the frame: flip, drop or insert one byte.
        let at = start + c.below(out.len() - start);
        match c.below(3) {
            0 => out[at] ^= 1 << c.below(8),
            1 => {
                out.remove(at);
            }
            _ => out.insert(at, *c.pick(b"\r\n*$-0 \"'\\")),
        }
    }
}

/// `write!` into a byte vector.
struct Adapter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Adapter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

type Step = Result<Vec<Bytes>, ProtocolError>;

/// Parses everything available in `buf` as a connection does; checks the per-step properties.
fn drain(buf: &mut BytesMut, case: &ParserCase, steps: &mut Vec<Step>) -> Result<bool, String> {
    loop {
        let before = buf.len();
        let peeked = peek_command_name(buf).map(Bytes::copy_from_slice);
        let multibulk = buf.first() == Some(&b'*');
        match parse_request(buf, &case.limits, case.authenticated) {
            Ok(Parsed::Command(args)) => {
                if buf.len() >= before {
                    return Err("a command was returned without consuming input".into());
                }
                if multibulk {
                    if let (Some(p), Some(first)) = (&peeked, args.first()) {
                        if p != first {
                            return Err(format!("peek_command_name saw {p:?}, the parser {first:?}"));
                        }
                    }
                    if args.len() > case.limits.max_multibulk_len {
                        return Err(format!("{} arguments past the multibulk limit", args.len()));
                    }
                    if let Some(a) = args.iter().find(|a| a.len() > case.limits.max_bulk_len) {
                        return Err(format!("a {}-byte argument past the bulk limit", a.len()));
                    }
                    if !case.authenticated && (args.len() > 10 || args.iter().any(|a| a.len() > 16384)) {
                        return Err("an unauthenticated client got past the size limits".into());
                    }
                } else if before - buf.len() > INLINE_MAX + 1 {
                    return Err("an inline request longer than the inline limit".into());
                }
                steps.push(Ok(args));
            }
            Ok(Parsed::Incomplete { .. }) => {
                if buf.len() != before {
                    return Err("Incomplete consumed input".into());
                }
                if buf.len() > INLINE_MAX && !multibulk {
                    return Err("more than the inline limit buffered without an error".into());
                }
                return Ok(true);
            }
            Err(e) => {
                steps.push(Err(e));
                return Ok(false);
            }
        }
    }
}

/// The parser properties: no panic; the same commands and errors whether the bytes arrive at
/// once or cut at any points; progress on every command; limits enforced; and every parsed
/// command re-encoded as multibulk parses back to itself.
pub fn check_parser(case: &ParserCase) -> Result<(), Finding> {
    let fail = |message: String| Finding {
        target: "parser",
        message,
        input: format!("{case:?}\nbytes: {:?}", String::from_utf8_lossy(&case.bytes)),
    };
    let mut whole = Vec::new();
    let mut buf = BytesMut::from(&case.bytes[..]);
    drain(&mut buf, case, &mut whole).map_err(&fail)?;

    let mut pieces = Vec::new();
    let mut buf = BytesMut::new();
    let mut last = 0;
    for &cut in case.splits.iter().chain(std::iter::once(&case.bytes.len())) {
        buf.extend_from_slice(&case.bytes[last..cut]);
        last = cut;
        if !drain(&mut buf, case, &mut pieces).map_err(&fail)? {
            break;
        }
    }
    if whole != pieces {
        return Err(fail(format!(
            "read all at once: {whole:?}\nread in pieces at {:?}: {pieces:?}",
            case.splits
        )));
    }
    for args in whole.iter().flatten().filter(|a| !a.is_empty()) {
        let mut enc = Vec::new();
        let _ = write!(Adapter(&mut enc), "*{}\r\n", args.len());
        for a in args {
            let _ = write!(Adapter(&mut enc), "${}\r\n", a.len());
            enc.extend_from_slice(a);
            enc.extend_from_slice(b"\r\n");
        }
        let mut buf = BytesMut::from(&enc[..]);
        let again = parse_request(&mut buf, &Limits::default(), true);
        if again != Ok(Parsed::Command(args.clone())) || !buf.is_empty() {
            return Err(fail(format!("{args:?} re-encoded parsed as {again:?}")));
        }
    }
    Ok(())
}

// ---- command dispatch -----------------------------------------------------------------------

fn render(args: &[Bytes]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{:?}", String::from_utf8_lossy(a));
    }
    s
}

/// A transcript of what ran, for the finding's report.
struct Transcript(String);

impl Transcript {
    fn step(&mut self, client: usize, args: &[Bytes], reply: &[u8]) {
        let shown = if reply.len() > 200 { &reply[..200] } else { reply };
        let _ = writeln!(
            self.0,
            "c{client}> {}\n   {:?}",
            render(args),
            String::from_utf8_lossy(shown)
        );
    }
}

/// A command-sequence input: the clients (true = switched to RESP3 with `HELLO 3` first) and
/// the steps (client pick, command), generated before anything runs so that a driver can
/// print an input that crashes the process before it could report.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub resp3: Vec<bool>,
    pub steps: Vec<(usize, Vec<Bytes>)>,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "clients (RESP3?): {:?}", self.resp3)?;
        for (pick, args) in &self.steps {
            writeln!(f, "c{}> {}", pick % self.resp3.len().max(1), render(args))?;
        }
        Ok(())
    }
}

fn clients(c: &mut impl Choices) -> Vec<bool> {
    (0..1 + c.below(3)).map(|_| c.chance(40)).collect()
}

/// Random valid-looking commands from up to three clients (RESP2 or RESP3), with MULTI/EXEC,
/// WATCH and blocking pops among them.
pub fn dispatch_session(c: &mut impl Choices, max_steps: usize, opts: Options) -> Session {
    let resp3 = clients(c);
    let mut steps = Vec::new();
    while steps.len() < max_steps && !c.exhausted() {
        let pick = c.below(3);
        let command = grammar::command(c, 0, opts);
        let waits = blocked_key(&command);
        if let Some((key, group)) = group_of(&command) {
            // A group with a delivered entry, most of the time, so that acks, claims and
            // pending lists have something to work on (and a read something to block for).
            if c.chance(50) {
                let from: &'static [u8] = if c.chance(50) { b"$" } else { b"0" };
                let f = Bytes::from_static(b"f");
                let word = |w: &'static str| Bytes::from_static(w.as_bytes());
                let (star, gt) = (word("*"), word(">"));
                let element = Bytes::from(grammar::element(c));
                steps.push((pick, vec![word("XADD"), key.clone(), star, f, element]));
                let create = vec![word("XGROUP"), word("CREATE"), key.clone(), group.clone()];
                steps.push((
                    pick,
                    [create, vec![Bytes::from_static(from), word("MKSTREAM")]].concat(),
                ));
                let read = vec![word("XREADGROUP"), word("GROUP"), group, word("c")];
                steps.push((pick, [read, vec![word("STREAMS"), key, gt]].concat()));
            }
        }
        let is_fcall = command
            .first()
            .is_some_and(|n| n.len() >= 5 && n[..5].eq_ignore_ascii_case(b"fcall"));
        if is_fcall && c.chance(70) {
            // A library to call into: a session rarely loads one by itself before it calls.
            let load = ["FUNCTION", "LOAD", "REPLACE"].map(|w| Bytes::from_static(w.as_bytes()));
            let mut args = load.to_vec();
            args.push(Bytes::from(containers::library(c, opts, 0, true)));
            steps.push((pick, args));
        }
        let follow_up = waits.filter(|_| c.chance(60)).map(|(key, waits)| {
            // Another client pushes to the key a blocking command waits on, so that blocked
            // clients get served (otherwise their own next command times them out first).
            let element = Bytes::from(grammar::element(c));
            let push: Vec<Bytes> = match waits {
                Waits::List => {
                    let push: &'static [u8] = if c.chance(50) { b"RPUSH" } else { b"LPUSH" };
                    vec![Bytes::from_static(push), key, element]
                }
                Waits::ZSet => {
                    let score = Bytes::from(c.below(5).to_string());
                    vec![Bytes::from_static(b"ZADD"), key, score, element]
                }
                Waits::Stream => {
                    let id = ["*", "*", "1-1", "$"];
                    let id = Bytes::from_static(c.pick(&id).as_bytes());
                    vec![
                        Bytes::from_static(b"XADD"),
                        key,
                        id,
                        Bytes::from_static(b"f"),
                        element,
                    ]
                }
            };
            (pick + 1 + c.below(2), push)
        });
        let subscribed = subscription(&command);
        steps.push((pick, command));
        steps.extend(follow_up);
        if let Some((channel, unsubscribe)) = subscribed {
            // A message for the subscription, from another client (or from a keyspace event
            // when the channel names one); then, often, the subscriber leaves again, or in
            // RESP2 it could run nothing but (un)subscriptions for the rest of the session.
            if c.chance(60) {
                let message = Bytes::from(grammar::element(c));
                let publish: &'static [u8] = if unsubscribe == b"SUNSUBSCRIBE" {
                    b"SPUBLISH"
                } else {
                    b"PUBLISH"
                };
                steps.push((
                    pick + 1 + c.below(2),
                    vec![Bytes::from_static(publish), channel, message],
                ));
            }
            if c.chance(70) {
                let leave = if c.chance(80) { unsubscribe } else { b"RESET" };
                steps.push((pick, vec![Bytes::from_static(leave)]));
            }
        }
    }
    Session { resp3, steps }
}

/// For a (P|S)SUBSCRIBE: a channel its first argument matches, and how to leave.
fn subscription(args: &[Bytes]) -> Option<(Bytes, &'static [u8])> {
    let name = args.first()?.to_ascii_lowercase();
    let first = args.get(1)?.clone();
    match name.as_slice() {
        b"subscribe" => Some((first, b"UNSUBSCRIBE")),
        b"ssubscribe" => Some((first, b"SUNSUBSCRIBE")),
        // The pattern itself, which matches itself when it has no special characters, and a
        // plain channel for the wildcards.
        b"psubscribe" => {
            let channel = if first.iter().any(|b| b"*?[\\".contains(b)) {
                Bytes::from_static(b"ch1")
            } else {
                first
            };
            Some((channel, b"PUNSUBSCRIBE"))
        }
        _ => None,
    }
}

/// The stream key and group a consumer-group command works on.
fn group_of(args: &[Bytes]) -> Option<(Bytes, Bytes)> {
    let name = args.first()?.to_ascii_lowercase();
    let (key, group) = match name.as_slice() {
        b"xreadgroup" => {
            let streams = args.iter().position(|a| a.eq_ignore_ascii_case(b"streams"))?;
            (streams + 1, 2)
        }
        b"xack" | b"xclaim" | b"xautoclaim" | b"xpending" => (1, 2),
        b"xinfo" | b"xgroup" if args.len() > 3 => (2, 3),
        _ => return None,
    };
    Some((args.get(key)?.clone(), args.get(group)?.clone()))
}

/// What a blocking command waits for.
enum Waits {
    List,
    ZSet,
    Stream,
}

/// The first key a blocking command waits on, and for what, if it is one.
fn blocked_key(args: &[Bytes]) -> Option<(Bytes, Waits)> {
    let name = args.first()?.to_ascii_lowercase();
    let (at, waits) = match name.as_slice() {
        b"blpop" | b"brpop" | b"blmove" | b"brpoplpush" => (1, Waits::List),
        b"blmpop" => (3, Waits::List),
        b"bzpopmin" | b"bzpopmax" => (1, Waits::ZSet),
        b"bzmpop" => (3, Waits::ZSet),
        b"xread" | b"xreadgroup" => {
            let streams = args.iter().position(|a| a.eq_ignore_ascii_case(b"streams"))?;
            (streams + 1, Waits::Stream)
        }
        _ => return None,
    };
    Some((args.get(at).cloned()?, waits))
}

/// EVAL of generated scripts (random nested replies, cjson, cmsgpack, struct, bit) from
/// RESP2 and RESP3 clients, with a few plain commands in between to give scripts data.
pub fn lua_session(c: &mut impl Choices, max_steps: usize, opts: Options) -> Session {
    let resp3 = clients(c);
    let mut steps = Vec::new();
    while steps.len() < max_steps && !c.exhausted() {
        let pick = c.below(3);
        let args = if c.chance(25) {
            grammar::command(c, 1, opts)
        } else {
            let body = super::lua::script(c, 4, opts);
            let mut args = vec![
                Bytes::from_static(if c.chance(85) { b"EVAL" } else { b"EVAL_RO" }),
                Bytes::from(body),
            ];
            let nkeys = c.below(3);
            args.push(Bytes::from(nkeys.to_string()));
            for _ in 0..nkeys + c.below(3) {
                args.push(Bytes::from(grammar::element(c)));
            }
            args
        };
        steps.push((pick, args));
    }
    Session { resp3, steps }
}

/// Runs a session through the harness (after a reset) and checks after each step: replies
/// framed for the client's protocol, and the harness invariants; at the end, every client
/// still answers.
pub fn run_session(target: &'static str, h: &mut Harness, session: &Session) -> Result<(), Finding> {
    h.reset();
    let mut log = Transcript(String::new());
    for &resp3 in &session.resp3 {
        let id = h.connect();
        if resp3 {
            let hello = [Bytes::from_static(b"HELLO"), Bytes::from_static(b"3")];
            let reply = h.execute(id, &hello);
            log.step(id, &hello, &reply);
        }
    }
    if h.clients() == 0 {
        h.connect();
    }
    let fail = |message: String, log: &Transcript| Finding {
        target,
        message,
        input: log.0.clone(),
    };
    for (pick, args) in &session.steps {
        let client = pick % h.clients();
        let before = h.protocol(client);
        let reply = h.execute(client, args);
        log.step(client, args, &reply);
        // HELLO and RESET switch protocols between the replies of one step (a block's reply,
        // then the command's): RESP3 types are allowed if either side speaks RESP3.
        let proto = if before == Protocol::Resp3 || h.protocol(client) == Protocol::Resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        if let Err(e) = check_replies(&reply, proto) {
            return Err(fail(format!("malformed reply: {e}"), &log));
        }
        if let Err(e) = h.check_invariants() {
            return Err(fail(e, &log));
        }
    }
    h.check_answers().map_err(|e| fail(e, &log))
}
