//! The process's allocator (mimalloc) and giving its free memory back to the system.
//!
//! mimalloc returns freed pages to the OS lazily: a purge is scheduled 10 ms after memory is
//! freed and carried out by the next allocation on the same thread. A broker that goes quiet
//! right after a burst (100,000 lists created and deleted) never allocates again, so the pages
//! stayed resident: RSS went 18 → 82 MB and stayed there. Redis avoids this with jemalloc's
//! background purging thread; we run the deferred purges from the event loop once a second
//! ([`release_free_memory`]), which brings RSS back to within a few percent of where it was
//! (tests/security.rs).
#![allow(unsafe_code)]

/// Carries out the purges that mimalloc deferred on the calling thread, so freed memory
/// leaves the resident set. Cheap when there is nothing to purge (it walks the thread's
/// page queues).
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and only asks the allocator to process its own
    // free lists on the calling thread; mimalloc documents it as callable at any time from
    // any thread. Every allocation in this process goes through mimalloc (the global
    // allocator below), so there is no foreign heap it could disturb.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
