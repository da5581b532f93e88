//! A minimal Lambda Runtime API on loopback, enough to run a function's release binary as
//! Lambda runs it: it answers the first `GET /2018-06-01/runtime/invocation/next` with one
//! event (or holds it, to time start-up), records the function's response or error, and holds
//! every later `next` so the process stays idle until it is killed.

use std::io::{BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variables Lambda sets, for a function named `name`, with the Runtime API at
/// `addr`.
pub fn lambda_env(addr: SocketAddr, name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "ingest-bench".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// What the function did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// It asked for the next event (the `n`th time, from 1).
    Next {
        /// When the request line arrived.
        at: Instant,
        /// How many `next` requests so far.
        n: usize,
    },
    /// It answered the event.
    Response(String),
    /// It reported the event's error.
    Error(String),
    /// It failed to initialise.
    InitError(String),
}

/// A running Runtime API.
#[derive(Debug)]
pub struct RuntimeApi {
    /// Its address, for `AWS_LAMBDA_RUNTIME_API`.
    pub addr: SocketAddr,
    /// What the function does.
    pub events: mpsc::Receiver<Event>,
    stop: Arc<AtomicBool>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// One HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// Reads one HTTP/1.1 request; `None` at the end of the connection.
pub fn read_request(reader: &mut impl std::io::BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut end = String::new();
            reader.read_line(&mut end)?;
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, path, body }))
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

struct Shared {
    invocation: Option<Vec<u8>>,
    served: AtomicBool,
    nexts: std::sync::atomic::AtomicUsize,
    sender: mpsc::Sender<Event>,
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut stream = stream;
    let mut reader = BufReader::new(read_half);
    while let Ok(Some(request)) = read_request(&mut reader) {
        let text = String::from_utf8_lossy(&request.body).into_owned();
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/2018-06-01/runtime/invocation/next") => {
                let n = shared.nexts.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = shared.sender.send(Event::Next {
                    at: Instant::now(),
                    n,
                });
                let first = !shared.served.swap(true, Ordering::Relaxed);
                match (&shared.invocation, first) {
                    (Some(event), true) => {
                        let deadline = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default()
                            + Duration::from_secs(24 * 3600);
                        let headers = [
                            ("lambda-runtime-aws-request-id", "bench-1".to_owned()),
                            (
                                "lambda-runtime-deadline-ms",
                                deadline.as_millis().to_string(),
                            ),
                            (
                                "lambda-runtime-invoked-function-arn",
                                "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
                            ),
                            (
                                "lambda-runtime-trace-id",
                                "Root=1-00000000-000000000000000000000000".to_owned(),
                            ),
                        ]
                        .map(|(k, v)| (k.to_owned(), v));
                        respond(&mut stream, "200 OK", &headers, event);
                    }
                    // Hold the request: the function waits, idle, until it is killed.
                    _ => {
                        let mut rest = Vec::new();
                        let _ = reader.read_to_end(&mut rest);
                        return;
                    }
                }
            }
            ("POST", path) => {
                let event = if path == "/2018-06-01/runtime/init/error" {
                    Event::InitError(text)
                } else if path.ends_with("/error") {
                    Event::Error(text)
                } else {
                    Event::Response(text)
                };
                let _ = shared.sender.send(event);
                respond(&mut stream, "202 Accepted", &[], br#"{"status":"OK"}"#);
            }
            _ => respond(&mut stream, "404 Not Found", &[], b"{}"),
        }
    }
}

/// Starts the API; `invocation` is the event the first `next` gets (none: `next` is held).
pub fn start(invocation: Option<Vec<u8>>) -> std::io::Result<RuntimeApi> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (sender, events) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        invocation,
        served: AtomicBool::new(false),
        nexts: std::sync::atomic::AtomicUsize::new(0),
        sender,
    });
    let stopping = stop.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(Ordering::Relaxed) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || serve_connection(stream, &shared));
        }
    });
    Ok(RuntimeApi { addr, events, stop })
}

/// The peak RSS (`VmHWM`) of a running process, in kilobytes.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    crate::data::vm_hwm_kb(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead as _;

    #[test]
    fn requests_with_a_length_or_chunks_are_read() {
        let text = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nhost: x\r\n\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\nX-T: 1\r\n\r\n";
        let mut reader = std::io::Cursor::new(&text[..]);
        let a = read_request(&mut reader).unwrap().unwrap();
        assert_eq!(
            (a.method.as_str(), a.path.as_str(), &a.body[..]),
            ("POST", "/a", &b"abc"[..])
        );
        let b = read_request(&mut reader).unwrap().unwrap();
        assert_eq!((b.method.as_str(), b.body.len()), ("GET", 0));
        let c = read_request(&mut reader).unwrap().unwrap();
        assert_eq!((c.path.as_str(), &c.body[..]), ("/c", &b"abc"[..]));
        assert_eq!(read_request(&mut reader).unwrap(), None);
    }

    #[test]
    fn the_api_serves_one_event_then_holds() {
        let api = start(Some(b"{\"x\":1}".to_vec())).unwrap();
        let mut conn = TcpStream::connect(api.addr).unwrap();
        conn.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert!(matches!(
            api.events.recv().unwrap(),
            Event::Next { n: 1, .. }
        ));
        let mut headers = String::new();
        while reader.read_line(&mut headers).unwrap() > 2 {}
        let mut body = [0u8; 7];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"{\"x\":1}");
        conn.write_all(
            b"POST /2018-06-01/runtime/invocation/bench-1/response HTTP/1.1\r\ncontent-length: 2\r\n\r\nok",
        )
        .unwrap();
        assert_eq!(api.events.recv().unwrap(), Event::Response("ok".to_owned()));
    }
}
