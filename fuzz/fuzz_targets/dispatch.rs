//! Command dispatch: up to 64 valid-looking commands from up to three RESP2/RESP3 clients,
//! MULTI/EXEC/WATCH and blocking pops included, every byte of the input a decision.
#![no_main]

mod common;

use broker::harness::targets::{dispatch_session, run_session};
use broker::harness::ByteChoices;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let session = dispatch_session(&mut ByteChoices::new(data), 64, common::options());
    common::HARNESS.with(|h| {
        if let Err(finding) = run_session("dispatch", &mut h.borrow_mut(), &session) {
            panic!("{finding}");
        }
    });
});
