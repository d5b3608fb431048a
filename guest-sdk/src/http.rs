//! HTTP through the host: a `wasm32-wasip1` guest has no sockets, so the runner makes requests
//! on its behalf, only to hosts allowed with `--allow-net`, and can store responses.
//!
//! ```no_run
//! use devstash::http;
//!
//! # fn main() -> Result<(), http::Error> {
//! let repo = http::Request::get("https://api.github.com/repos/rust-lang/rust")
//!     .header("Accept", "application/json")
//!     .stash("24h")          // store 2xx responses for a day
//!     .send()?;
//! println!("{}", repo.text());
//! # Ok(())
//! # }
//! ```
//!
//! Refusals and network failures (not allowed, offline, connection refused, timeout) and
//! responses with a status of 400 or more are `Err` values, never traps: see [`Error`] and
//! [`ErrorKind`]. The `Display` of an error for a status of 400 or more shows the start of the
//! body the server answered with (what most APIs put their reason in), and the `Debug` of a
//! [`Response`] or an [`Error`] shows a body as (cut) text, never as a list of numbers.
//!
//! Redirects are not followed: a 3xx is an `Ok` response, with its `Location` header.
//!
//! Secret headers (`Authorization`, `Proxy-Authorization`, `Cookie`, `X-Api-Key`, `api-key`)
//! are never written to disk or into keys in clear; `Debug` shows them as `<redacted>`.
//!
//! # The `json` feature
//!
//! With `devstash = { version = "…", features = ["json"] }`, `Request::json` sends a value as
//! a JSON body and `Response::json` parses a body as JSON (both with `serde_json`). Without
//! the feature, neither exists and the SDK does not depend on `serde_json`.

use std::fmt;
use std::time::Duration;

use devstash_protocol::{HttpCache, HttpErrorKind, HttpRequest, HttpResponse, is_secret_header};
use serde::{Deserialize, Serialize};

/// A request being built.
#[derive(Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    cache: Option<HttpCache>,
    invalid: Option<String>,
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            cache: None,
            invalid: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: &str) -> Request {
        Request::new("PUT", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: &str) -> Request {
        Request::new("DELETE", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `Authorization: Bearer <token>` (a secret header: never stored in clear).
    pub fn bearer_auth(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    #[cfg(feature = "json")]
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Request {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.body = body;
                self.header("Content-Type", "application/json")
            }
            Err(e) => {
                self.invalid = Some(format!("the JSON body does not serialize: {e}"));
                self
            }
        }
    }

    /// Sets a timeout for the whole request.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Stores successful (2xx) responses for `ttl` (`30m`, `2h`, `1d`, `1w`, …) and answers
    /// identical later requests from the store. An invalid TTL makes `send` return an error.
    pub fn stash(mut self, ttl: &str) -> Request {
        match humantime::parse_duration(ttl.trim()) {
            Ok(d) if d.as_secs() > 0 => {
                self.cache = Some(HttpCache {
                    ttl_secs: Some(d.as_secs()),
                })
            }
            _ => {
                self.invalid = Some(format!(
                    "invalid ttl {ttl:?}: write a number and a unit, e.g. \"30m\", \"2h\", \"1d\""
                ))
            }
        }
        self
    }

    /// Stores successful responses until the cache is cleared.
    pub fn stash_forever(mut self) -> Request {
        self.cache = Some(HttpCache { ttl_secs: None });
        self
    }

    /// Sends the request (or answers it from the store, see [`Request::stash`]): `Ok` for a
    /// status below 400, an [`Error`] for everything else, a status of 400 or more included
    /// ([`ErrorKind::Status`], with the response in [`Error::response`]).
    pub fn send(self) -> Result<Response, Error> {
        if let Some(message) = self.invalid {
            return Err(Error::new(ErrorKind::InvalidRequest, message));
        }
        let request = HttpRequest {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self.timeout.map(|t| t.as_millis() as u64),
            cache: self.cache,
        };
        let response = imp::send(&request)?;
        if response.status >= 400 {
            return Err(Error::status(&request.method, &request.url, response));
        }
        Ok(response)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret_header(k) {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The key material of a request (for `stash!(request.send())`): secret header values are
/// hashed, never kept in clear.
impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_header(k) {
                    format!("blake3:{}", blake3::hash(v.as_bytes()).to_hex())
                } else {
                    v.clone()
                };
                (k.to_ascii_lowercase(), v)
            })
            .collect();
        (&self.method, &self.url, headers, &self.body).serialize(s)
    }
}

/// A response the server gave: status, headers and body.
///
/// [`Request::send`] returns it for a status below 400 (2xx, and 3xx: redirects are not
/// followed); for 400 or more it returns an [`Error`] of kind [`ErrorKind::Status`], which
/// holds the response in [`Error::response`]. A response answered from the store (see
/// [`Request::stash`]) is the one stored, without its `Set-Cookie` headers.
///
/// Its `Debug` shows the body as text (cut after 1 KiB) when it is UTF-8, and as a byte count
/// when it is not.
///
/// ```no_run
/// use devstash::http;
///
/// # fn main() -> Result<(), http::Error> {
/// let r = http::get("https://example.com/data.csv")?;
/// assert!((200..400).contains(&r.status));
/// if let Some(kind) = r.header("content-type") {
///     println!("{kind}, {} bytes", r.body.len());
/// }
/// let text: String = r.text();
/// # let _ = text;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The status code: `200`, `304`, … (below 400 in a `Response` from [`Request::send`]).
    pub status: u16,
    /// The headers, in the order the server sent them, one pair per header line: a header sent
    /// twice is there twice. Names are as the runner's client reports them (lowercase); look
    /// them up with [`Response::header`], which ignores case.
    pub headers: Vec<(String, String)>,
    /// The body, whole (bodies over 256 MiB, or over what `--max-memory` leaves, are refused
    /// with an [`ErrorKind::Other`] error). See [`Response::text`] and `Response::json`.
    pub body: Vec<u8>,
}

impl From<HttpResponse> for Response {
    fn from(r: HttpResponse) -> Response {
        Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl Response {
    /// The body as text (invalid UTF-8 replaced with `�`).
    ///
    /// ```
    /// let r = devstash::http::Response { status: 200, headers: vec![], body: b"hi".to_vec() };
    /// assert_eq!(r.text(), "hi");
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of the first header with this name (case-insensitive).
    ///
    /// ```
    /// let r = devstash::http::Response {
    ///     status: 200,
    ///     headers: vec![("content-type".into(), "application/json".into())],
    ///     body: vec![],
    /// };
    /// assert_eq!(r.header("Content-Type"), Some("application/json"));
    /// assert_eq!(r.header("ETag"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON into `T`, with `serde_json`. Needs the SDK's `json` feature
    /// (`devstash = { version = "…", features = ["json"] }`).
    ///
    /// A body that is not the JSON `T` expects is an [`ErrorKind::Other`] error whose message
    /// gives `serde_json`'s reason and the start of the body. The status is not looked at: a
    /// `Response` from [`Request::send`] is never an error status, and the body of one is in
    /// the [`Error::response`] of the error.
    ///
    /// ```no_run
    /// use devstash::http;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Repo {
    ///     full_name: String,
    ///     stargazers_count: u64,
    /// }
    ///
    /// # fn main() -> Result<(), http::Error> {
    /// let repo: Repo = http::get("https://api.github.com/repos/rust-lang/rust")?.json()?;
    /// println!("{} has {} stars", repo.full_name, repo.stargazers_count);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!(
                    "the response is not the JSON expected: {e}; it begins: {}",
                    Excerpt(&self.body, DISPLAY_BODY_MAX)
                ),
            )
        })
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &BodyDebug(&self.body))
            .finish()
    }
}

/// Most bytes of a body shown by the `Display` of an [`Error`].
const DISPLAY_BODY_MAX: usize = 200;
/// Most bytes of a body shown by the `Debug` of a [`Response`].
const DEBUG_BODY_MAX: usize = 1024;

/// The longest prefix of `body[..max]` that is UTF-8 (a character cut by `max` is left out),
/// or `None` when those bytes are not text.
fn text_prefix(body: &[u8], max: usize) -> Option<&str> {
    let head = &body[..body.len().min(max)];
    match std::str::from_utf8(head) {
        Ok(text) => Some(text),
        // Only a character cut at the end of the head: the bytes before it are the text.
        Err(e) if e.error_len().is_none() && head.len() < body.len() => {
            Some(std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default())
        }
        Err(_) => None,
    }
}

/// A body for a one-line message: its first bytes as text, trimmed, with control characters
/// escaped (`\n`, `\u{1b}`) and `…` when cut; or its size when it is not UTF-8.
struct Excerpt<'a>(&'a [u8], usize);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Excerpt(body, max) = *self;
        let Some(text) = text_prefix(body, max) else {
            return write!(f, "<{} bytes, not UTF-8>", body.len());
        };
        let cut = text.len() < body.len();
        let text = if cut { text.trim_start() } else { text.trim() };
        if text.is_empty() && !cut {
            return f.write_str("<empty body>");
        }
        for c in text.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if cut { f.write_str("…") } else { Ok(()) }
    }
}

/// A body for `Debug`: a (cut) string when it is UTF-8, else its size.
struct BodyDebug<'a>(&'a [u8]);

impl fmt::Debug for BodyDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match text_prefix(self.0, DEBUG_BODY_MAX) {
            Some(text) if text.len() == self.0.len() => write!(f, "{text:?}"),
            Some(text) => write!(f, "{text:?}… ({} bytes)", self.0.len()),
            None => write!(f, "<{} bytes, not UTF-8>", self.0.len()),
        }
    }
}

/// The reason phrase of a common error status (`Not Found` for 404), for messages.
fn reason(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

/// Why a request failed: the [`Error::kind`] of an [`Error`].
///
/// ```no_run
/// use devstash::http::{self, ErrorKind};
///
/// match http::get("https://api.example.com/v1/items") {
///     Ok(r) => println!("{}", r.text()),
///     Err(e) if e.kind == ErrorKind::Status(404) => println!("no items yet"),
///     Err(e) if e.kind == ErrorKind::NotAllowed => eprintln!("{e}"), // says which flag to add
///     Err(e) => eprintln!("request failed ({:?}): {e}", e.kind),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The runner refused the request: its host is not allowed. Run with
    /// `--allow-net=HOST` (or `HOST:PORT`, `*.DOMAIN`). Nothing was sent.
    NotAllowed,
    /// The runner is offline (`--offline`) and has no stored response for this request (a
    /// replay answers from its tape instead, and stops at a request its tape does not hold).
    Offline,
    /// The connection failed: refused, no such host (DNS), TLS.
    Connect,
    /// The request took longer than its timeout ([`Request::timeout`]; 30 s when none is set).
    Timeout,
    /// The request is malformed (bad URL, method or header), or was built with an invalid
    /// option ([`Request::stash`] with a bad TTL, `Request::json` with a value that does not
    /// serialize). Nothing was sent.
    InvalidRequest,
    /// The server answered with this status, 400 or more. The response, body included, is in
    /// [`Error::response`], and the `Display` of the error shows the start of its body.
    /// Such responses are never stored.
    Status(u16),
    /// Anything else: a response too large (over 256 MiB, or what `--max-memory` leaves), a
    /// protocol error, a body that is not the JSON expected (`Response::json`), or the
    /// program not running under `devstash run` (natively, every request is this error).
    Other,
}

/// A failed request: every way a request can fail is an `Err(Error)`, never a trap.
///
/// `Display` gives [`Error::message`], and for an [`ErrorKind::Status`] error the start of the
/// body too: `GET https://api.github.com/user answered 401 Unauthorized: {"message":"Requires
/// authentication",…}` (at most 200 bytes of it, with control characters escaped and `…`
/// where it is cut; the size of the body when it is not UTF-8). `Debug` shows every field,
/// with a body as (cut) text.
///
/// ```no_run
/// use devstash::http::{self, ErrorKind};
///
/// match http::Request::get("https://api.github.com/user").send() {
///     Ok(r) => println!("{}", r.text()),
///     Err(e) => {
///         eprintln!("{e}"); // GET … answered 401 Unauthorized: {"message":"Requires auth…
///         if let ErrorKind::Status(status) = e.kind {
///             let response = e.response.as_deref().expect("a status error has its response");
///             assert_eq!(response.status, status);
///             eprintln!("www-authenticate: {:?}", response.header("www-authenticate"));
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    /// What kind of failure: test it rather than the message, which is for people.
    pub kind: ErrorKind,
    /// What happened, and what to do where there is something to do: `GET URL answered 404 Not
    /// Found`, `GET URL: requests to HOST:PORT are not allowed; run with --allow-net=HOST`. For
    /// a status error it does not hold the body (the `Display` of the error adds its start).
    pub message: String,
    /// The response, for an [`ErrorKind::Status`] error (and only for one): status, headers and
    /// the whole body, which is where APIs explain what was wrong.
    pub response: Option<Box<Response>>,
}

impl Error {
    fn new(kind: ErrorKind, message: String) -> Error {
        Error {
            kind,
            message,
            response: None,
        }
    }

    /// The error for a response whose status is 400 or more.
    fn status(method: &str, url: &str, response: Response) -> Error {
        let status = response.status;
        let message = match reason(status) {
            Some(reason) => format!("{method} {url} answered {status} {reason}"),
            None => format!("{method} {url} answered {status}"),
        };
        Error {
            kind: ErrorKind::Status(status),
            message,
            response: Some(Box::new(response)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (&self.kind, &self.response) {
            (ErrorKind::Status(_), Some(r)) => {
                write!(f, ": {}", Excerpt(&r.body, DISPLAY_BODY_MAX))
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

impl From<devstash_protocol::HttpError> for Error {
    fn from(e: devstash_protocol::HttpError) -> Error {
        let kind = match e.kind {
            HttpErrorKind::NotAllowed => ErrorKind::NotAllowed,
            HttpErrorKind::Offline => ErrorKind::Offline,
            HttpErrorKind::Connect => ErrorKind::Connect,
            HttpErrorKind::Timeout => ErrorKind::Timeout,
            HttpErrorKind::InvalidRequest => ErrorKind::InvalidRequest,
            HttpErrorKind::Other => ErrorKind::Other,
        };
        Error::new(kind, e.message)
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use devstash_protocol::{HttpResult, Status, codec};

    pub fn send(request: &HttpRequest) -> Result<Response, Error> {
        let bytes = codec::encode(request).map_err(|e| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let mut len = 0u64;
        // SAFETY: `bytes` is alive for the call and `len` is a valid, aligned u64.
        let status = unsafe { crate::abi::http_request(bytes.as_ptr(), bytes.len(), &mut len) };
        if status != Status::Hit as i32 {
            return Err(Error::new(
                ErrorKind::Other,
                format!("the runner refused the request ({status})"),
            ));
        }
        let len = len as usize;
        let mut buf = Vec::with_capacity(len);
        // SAFETY: `buf` has capacity `len`; the length is set only after the host wrote it.
        let taken = unsafe { crate::abi::stash_take(buf.as_mut_ptr(), len) };
        if taken != Status::Hit as i32 {
            return Err(Error::new(
                ErrorKind::Other,
                "the runner lost the response".into(),
            ));
        }
        unsafe { buf.set_len(len) };
        let result: HttpResult = codec::decode(&buf).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("the response does not decode: {e}"),
            )
        })?;
        result.map(Response::from).map_err(Error::from)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;

    pub fn send(request: &HttpRequest) -> Result<Response, Error> {
        Err(Error::new(
            ErrorKind::Other,
            format!(
                "{} {}: devstash::http works only when the program runs under `devstash run`",
                request.method, request.url
            ),
        ))
    }
}
