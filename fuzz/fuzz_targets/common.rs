//! What the session targets share: one harness per thread (a Lua interpreter costs
//! milliseconds to create), reset before every input, and the known-crash switch.

use broker::harness::grammar::Options;
use broker::harness::Harness;
use std::cell::RefCell;
use std::sync::OnceLock;

thread_local! {
    pub static HARNESS: RefCell<Harness> = RefCell::new(Harness::new(broker::BrokerConfig::default()));
}

/// `FUZZ_KNOWN_CRASHES=0` leaves out the inputs of the crashes found and fixed (see
/// `broker::harness::lua::KNOWN_CRASHES`).
pub fn options() -> Options {
    static OPTIONS: OnceLock<Options> = OnceLock::new();
    *OPTIONS.get_or_init(|| Options {
        known_crashes: std::env::var("FUZZ_KNOWN_CRASHES").map_or(true, |v| v != "0"),
    })
}
