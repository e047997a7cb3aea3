//! A small blocking HTTP/1.1 client for the management API, over a Unix
//! socket or TCP. One request per connection (`Connection: close`); bodies
//! by Content-Length or chunked; every step bounded by a timeout.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// Largest response accepted.
const MAX_RESPONSE: u64 = 64 << 20;
/// Connect bound.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound for a whole request.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the API is.
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    /// `/path/to/api.sock`, `unix:/path`, or `http://host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("http://") {
            let hostport = rest.trim_end_matches('/');
            if hostport.is_empty() || hostport.contains('/') {
                return Err(format!("{text:?}: expected http://host:port"));
            }
            let hostport = if hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && !hostport.ends_with(']')
            {
                hostport.to_string()
            } else {
                format!("{hostport}:80")
            };
            return Ok(Self::Tcp(hostport));
        }
        if text.starts_with("https://") {
            return Err("https is not supported: use the Unix socket, or http on a trusted network (e.g. through an SSH tunnel)".into());
        }
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.is_empty() {
            return Err("empty API address".into());
        }
        Ok(Self::Unix(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "{}", p.display()),
            Self::Tcp(h) => write!(f, "http://{h}"),
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// The API could not be reached (no daemon, wrong path, refused).
    Unreachable(String),
    /// The API answered with an error status.
    Status {
        status: u16,
        error: String,
        field: Option<String>,
    },
    /// Anything else: timeouts, malformed responses.
    Other(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(m) | Self::Other(m) => f.write_str(m),
            Self::Status {
                status,
                error,
                field,
            } => match field {
                Some(fl) if !error.contains(fl.as_str()) => {
                    write!(f, "{fl}: {error} (HTTP {status})")
                }
                _ => write!(f, "{error} (HTTP {status})"),
            },
        }
    }
}

impl std::error::Error for ClientError {}

/// A response.
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// The API client.
pub(crate) struct Client {
    endpoint: Endpoint,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        Self { endpoint, token }
    }

    fn connect(&self, timeout: Duration) -> Result<Box<dyn Stream>, ClientError> {
        let unreachable = |e: std::io::Error| {
            ClientError::Unreachable(format!(
                "cannot reach the ironsan API at {}: {e}",
                self.endpoint
            ))
        };
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).map_err(unreachable)?;
                s.set_read_timeout(Some(timeout)).map_err(unreachable)?;
                s.set_write_timeout(Some(timeout)).map_err(unreachable)?;
                Ok(Box::new(s))
            }
            Endpoint::Tcp(hostport) => {
                let addrs = hostport.to_socket_addrs().map_err(unreachable)?;
                let mut last = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            s.set_read_timeout(Some(timeout)).map_err(unreachable)?;
                            s.set_write_timeout(Some(timeout)).map_err(unreachable)?;
                            let _ = s.set_nodelay(true);
                            return Ok(Box::new(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(unreachable(last.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                })))
            }
        }
    }

    /// Sends one request; `body` is (content type, bytes).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let mut stream = self.connect(timeout)?;
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost",
            Endpoint::Tcp(h) => h.as_str(),
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: ironsan/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let (ctype, bytes) = body.unwrap_or(("application/json", &[]));
        if body.is_some() {
            head.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
        let io = |what: &str, e: std::io::Error| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                ClientError::Other(format!("{what}: no answer from the API within {timeout:?}"))
            } else {
                ClientError::Other(format!("{what}: {e}"))
            }
        };
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(bytes))
            .and_then(|()| stream.flush())
            .map_err(|e| io("sending the request", e))?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .map_err(|e| io("reading the response", e))?;
        parse_response(&raw).map_err(ClientError::Other)
    }

    /// A request whose answer is JSON; error statuses become [`ClientError::Status`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let resp = self.request(
            method,
            path,
            bytes.as_deref().map(|b| ("application/json", b)),
            timeout,
        )?;
        json_of(resp)
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None, DEFAULT_TIMEOUT)
    }
}

/// The JSON of a response, or its error.
pub(crate) fn json_of(resp: Response) -> Result<Value, ClientError> {
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if (200..300).contains(&resp.status) {
        return parsed.ok_or_else(|| {
            ClientError::Other(format!(
                "the API answered {} with a body that is not JSON",
                resp.status
            ))
        });
    }
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).trim().to_string());
    let field = parsed
        .as_ref()
        .and_then(|v| v.get("field"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Err(ClientError::Status {
        status: resp.status,
        error,
        field,
    })
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the API closed the connection before a complete response")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "response header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            );
        } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| format!("response body cut short ({} of {n} bytes)", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// Percent-encodes one path segment (IQNs, `VOL@SNAP`, `[::1]:3260`).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_responses() {
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}junk").expect("parses");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn endpoints_and_segments() {
        assert!(matches!(
            Endpoint::parse("/run/api.sock"),
            Ok(Endpoint::Unix(_))
        ));
        assert!(
            matches!(Endpoint::parse("http://127.0.0.1:9260"), Ok(Endpoint::Tcp(h)) if h == "127.0.0.1:9260")
        );
        assert!(
            matches!(Endpoint::parse("http://[::1]:9260/"), Ok(Endpoint::Tcp(h)) if h == "[::1]:9260")
        );
        assert!(Endpoint::parse("https://x:1").is_err());
        assert_eq!(seg("[::1]:3260"), "%5B::1%5D:3260");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("*"), "%2A");
    }
}
