//! What an idle connection costs the broker, in heap bytes: counted by a global allocator that
//! wraps the system one, so the number is exact and does not depend on the allocator's caching
//! (the RSS comparison with redis-server is in `scripts/bench-broker.sh`).
//!
//! One test function: the allocator counts every thread of this process, so the measurements
//! must not overlap with another test's allocations.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Passes every call to `System` unchanged and adds up the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter is a plain atomic with no effect on the allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Connections per measurement: client and server ends both live in this process, so this
/// stays well under the usual 1,024 descriptors.
const CONNECTIONS: usize = 400;
/// The bar: Redis's idle client costs about 1.4 KB; ours must stay under 4 KB.
const MAX_BYTES_PER_CONNECTION: isize = 4096;

fn live() -> isize {
    LIVE_BYTES.load(Relaxed)
}

/// Waits until the heap stops moving (the broker has finished reacting), up to a bound.
fn settle() -> isize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = live();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = live();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn per_connection(before: isize, after: isize) -> isize {
    (after - before) / CONNECTIONS as isize
}

#[test]
fn idle_connections_cost_under_4_kb_of_heap_each() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let broker = broker::Broker::new(broker::BrokerConfig::default());
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = broker.serve(listener, std::future::pending()).await;
        })
    });
    // Warm up: the first connection sets up lazily built state (client registry, timers).
    {
        let mut c = connect(addr);
        c.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        c.read_exact(&mut pong).unwrap();
    }
    let base = settle();

    // 1. Connections that never send anything.
    let mut clients: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(addr)).collect();
    let silent = settle();
    let cost = per_connection(base, silent);
    eprintln!("silent idle connection: {cost} bytes");
    assert!(
        cost <= MAX_BYTES_PER_CONNECTION,
        "silent idle connection costs {cost} bytes"
    );

    // 2. The same connections after each has run a command: the read buffer is given back.
    for c in &mut clients {
        c.write_all(b"PING\r\n").unwrap();
    }
    for c in &mut clients {
        let mut pong = [0u8; 7];
        c.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
    }
    let spoke = settle();
    let cost = per_connection(base, spoke);
    eprintln!("idle connection after a command: {cost} bytes");
    assert!(
        cost <= MAX_BYTES_PER_CONNECTION,
        "idle connection after PING costs {cost} bytes"
    );

    // 3. After a burst: a 64 KB value in and a large reply out on every connection; both
    //    buffers must shrink back once the connection is idle again.
    let value = vec![b'x'; 64 * 1024];
    for (i, c) in clients.iter_mut().enumerate() {
        let key = format!("k{i}");
        let mut req = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
            key.len(),
            value.len()
        )
        .into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes());
        c.write_all(&req).unwrap();
        let expected = 5 + format!("${}\r\n", value.len()).len() + value.len() + 2;
        let mut reply = vec![0u8; expected];
        c.read_exact(&mut reply).unwrap();
        assert!(reply.starts_with(b"+OK\r\n$65536\r\n"));
    }
    let burst = settle();
    let values = (CONNECTIONS * value.len()) as isize;
    let cost = per_connection(base, burst - values);
    eprintln!("idle connection after a 64 KB burst (stored values excluded): {cost} bytes");
    assert!(
        cost <= MAX_BYTES_PER_CONNECTION,
        "idle connection after a burst costs {cost} bytes beyond the values it stored"
    );

    // 4. Closing gives everything back: after a first round of connections has grown the
    //    broker's tables (client registry, the runtime's I/O slab, the keyspace's hash table all
    //    keep their capacity), a second identical round must leave nothing more behind.
    let flush = || {
        let mut c = connect(addr);
        c.write_all(b"FLUSHALL\r\n").unwrap();
        let mut ok = [0u8; 5];
        c.read_exact(&mut ok).unwrap();
    };
    flush();
    drop(clients);
    let first_round = settle();
    let mut again: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(addr)).collect();
    for c in &mut again {
        c.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        c.read_exact(&mut pong).unwrap();
    }
    drop(again);
    flush();
    let second_round = settle();
    let leaked = second_round - first_round;
    eprintln!(
        "capacity kept after the first round: {} bytes; left by the second: {leaked}",
        first_round - base
    );
    assert!(
        leaked.abs() <= 16 * 1024,
        "{leaked} bytes were not given back after a second round of {CONNECTIONS} connections"
    );
}
