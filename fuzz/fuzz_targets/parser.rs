//! Request parser: arbitrary bytes cut at arbitrary read boundaries, under random limits.
#![no_main]

use broker::harness::targets::{check_parser, ParserCase};
use broker::harness::ByteChoices;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks raw bytes (coverage guidance finds the structure) or frames built
    // from the input's decisions (valid, damaged, at the size limits).
    let case = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => ParserCase::structured(&mut ByteChoices::new(rest)),
        Some((_, rest)) => ParserCase::raw(rest),
        None => return,
    };
    if let Err(finding) = check_parser(&case) {
        panic!("{finding}");
    }
});
