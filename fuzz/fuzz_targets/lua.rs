//! Lua value conversion: EVAL of generated scripts (nested replies, cjson, cmsgpack, struct,
//! bit) from RESP2 and RESP3 clients, a few plain commands in between.
#![no_main]

mod common;

use broker::harness::targets::{lua_session, run_session};
use broker::harness::ByteChoices;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let session = lua_session(&mut ByteChoices::new(data), 16, common::options());
    common::HARNESS.with(|h| {
        if let Err(finding) = run_session("lua", &mut h.borrow_mut(), &session) {
            panic!("{finding}");
        }
    });
});
