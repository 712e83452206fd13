//! A webhook receiver on loopback for tests: it records every request (method, path,
//! headers, body) and answers from a script, then `200` once the script runs out.
//!
//! Plain HTTP/1.1 on a `TcpListener`, one request per connection (`Connection:
//! close`), so it can also misbehave in ways a framework would not let it: hold the
//! answer past the sender's timeout, close the connection without answering, or send
//! a body that never ends. It also answers JSON, as a rollout's webhook gate does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This status with a short body naming it.
    Status(u16),
    /// `302 Found` with this `Location`.
    Redirect(String),
    /// `200`, after this long (past the sender's timeout, usually).
    Sleep(Duration),
    /// No answer: the connection is closed once the request is read.
    Close,
    /// This status, then a body that never ends.
    Endless(u16),
    /// This status with this body, as `application/json` (a gate's verdict).
    Json(u16, String),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, ...
    pub method: String,
    /// The request target, e.g. `/hook?x=1`.
    pub path: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    connections: AtomicUsize,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(stream, Arc::clone(&serving)));
            }
        });
        Self { addr, shared, task }
    }

    /// `host:port`, as an allowlist entry names it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with `answers`, in order, after any still scripted.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// Connections accepted so far, with or without a request on them.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived, at most `within`; returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {count} requests within {within:?}, got {}: {:#?}",
                    received.len(),
                    received
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let answer = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    shared.received.lock().unwrap().push(request);
    shared.arrived.notify_waiters();
    let head = |status: u16, extra: &str, length: Option<usize>| {
        let length = length.map_or(String::new(), |n| format!("content-length: {n}\r\n"));
        format!("HTTP/1.1 {status} Scripted\r\n{extra}{length}connection: close\r\n\r\n")
    };
    let reply = match answer {
        Answer::Status(status) => {
            let body = format!("scripted {status}");
            format!("{}{body}", head(status, "", Some(body.len())))
        }
        Answer::Redirect(location) => head(302, &format!("location: {location}\r\n"), Some(0)),
        Answer::Sleep(pause) => {
            tokio::time::sleep(pause).await;
            format!("{}ok", head(200, "", Some(2)))
        }
        Answer::Json(status, body) => format!(
            "{}{body}",
            head(
                status,
                "content-type: application/json\r\n",
                Some(body.len())
            )
        ),
        Answer::Close => return,
        Answer::Endless(status) => {
            let _ = stream.write_all(head(status, "", None).as_bytes()).await;
            let chunk = vec![b'x'; 16 * 1024];
            while stream.write_all(&chunk).await.is_ok() {}
            return;
        }
    };
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads one request: the head up to the blank line, then `content-length` bytes.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}
