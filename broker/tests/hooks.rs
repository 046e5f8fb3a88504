//! What an embedding program reads in-process: the elements a push added (`QueueHook::
//! on_elements`) and a list's oldest elements (`Broker::list_tail`), through the real server.

use broker::{Broker, BrokerConfig, QueueEvent, QueueHook};
use bytes::Bytes;
use parking_lot::Mutex;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// Every push seen: (queue, at the head, elements), and the lengths its event reported.
#[derive(Default)]
struct Recorder {
    elements: Mutex<Vec<(String, bool, Vec<String>)>>,
    lengths: Mutex<Vec<usize>>,
}

impl QueueHook for Recorder {
    fn on_event(&self, event: &QueueEvent) {
        if let QueueEvent::Pushed { length, .. } = event {
            self.lengths.lock().push(*length);
        }
    }

    fn on_elements(&self, _db: usize, queue: &[u8], at_head: bool, elements: &[Bytes]) {
        self.elements.lock().push((
            String::from_utf8_lossy(queue).into_owned(),
            at_head,
            elements
                .iter()
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect(),
        ));
    }
}

/// Sends one inline command and reads its reply (one line, or a bulk string's two).
fn call(c: &mut TcpStream, command: &str) -> String {
    c.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let mut lines = 0;
    while lines < 1 || (out.starts_with(b"$") && !out.starts_with(b"$-1") && lines < 2) {
        c.read_exact(&mut byte).unwrap();
        out.push(byte[0]);
        if out.ends_with(b"\r\n") {
            lines += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hooks_see_pushed_elements_and_the_tail_is_the_oldest() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let broker = Broker::new(BrokerConfig::default());
    let recorder = Arc::new(Recorder::default());
    broker.queues().add_hook(recorder.clone());
    let serving = broker.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = serving.serve(listener, std::future::pending()).await;
        })
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    assert_eq!(call(&mut c, "LPUSH q a b"), ":2\r\n");
    assert_eq!(call(&mut c, "RPUSH q z"), ":3\r\n");
    assert_eq!(call(&mut c, "LMOVE q other RIGHT LEFT"), "$1\r\nz\r\n");
    let seen = recorder.elements.lock().clone();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        vec![
            ("q".to_string(), true, strings(&["a", "b"])),
            ("q".to_string(), false, strings(&["z"])),
            ("other".to_string(), true, strings(&["z"])),
        ]
    );
    assert_eq!(
        *recorder.lengths.lock(),
        vec![2, 3, 1],
        "each push's event follows its elements"
    );

    // `q` is now [b, a] from head to tail: the oldest element is `a`.
    let (len, tail) = broker.list_tail(0, "q", 1).unwrap();
    assert_eq!((len, tail), (2, vec![Bytes::from_static(b"a")]));
    let (_, both) = broker.list_tail(0, "q", 10).unwrap();
    assert_eq!(both, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    assert_eq!(broker.list_tail(0, "missing", 1).unwrap(), (0, Vec::new()));
}
