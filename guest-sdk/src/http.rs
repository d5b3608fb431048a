//! HTTP through the host: a `wasm32-wasip1` guest has no sockets, so the runner makes requests
//! on its behalf, only to hosts allowed with `--allow-net`, and can store responses.
//!
//! ```ignore
//! use devstash::http;
//!
//! let repo = http::Request::get("https://api.github.com/repos/rust-lang/rust")
//!     .header("Accept", "application/json")
//!     .stash("24h")          // store 2xx responses for a day
//!     .send()?;
//! println!("{}", repo.text());
//! ```
//!
//! Refusals and network failures (not allowed, offline, connection refused, timeout) and
//! responses with a status of 400 or more are `Err` values, never traps.
//!
//! Secret headers (`Authorization`, `Proxy-Authorization`, `Cookie`, `X-Api-Key`, `api-key`)
//! are never written to disk or into keys in clear; `Debug` shows them as `<redacted>`.

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

    /// Sends the request.
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
            let message = format!(
                "{} {} answered {}",
                request.method, request.url, response.status
            );
            return Err(Error {
                kind: ErrorKind::Status(response.status),
                message,
                response: Some(Box::new(response)),
            });
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

/// A response (status below 400; see [`Error::response`] for the others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
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
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("the response is not the JSON expected: {e}"),
            )
        })
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host is not allowed: run with `--allow-net=HOST`.
    NotAllowed,
    /// The runner is offline and has no stored response.
    Offline,
    /// The connection failed (refused, DNS, TLS).
    Connect,
    /// The request timed out.
    Timeout,
    /// The request was malformed.
    InvalidRequest,
    /// The server answered with this status (400 or more).
    Status(u16),
    /// Anything else.
    Other,
}

/// A failed request.
#[derive(Debug, Clone)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened, and what to do where there is something to do.
    pub message: String,
    /// The response, for [`ErrorKind::Status`].
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
