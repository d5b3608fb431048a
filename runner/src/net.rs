//! Network through the host: the guest has no sockets, so `devstash::http_request` makes
//! requests on its behalf, only to hosts allowed with `--allow-net`, never under `--offline`,
//! and stores successful responses when the guest asks for it.
//!
//! Secret headers (`Authorization`, `Proxy-Authorization`, `Cookie`, `X-Api-Key`, `api-key`,
//! and any named with `--redact-header`) are sent to the server but never written to disk, to
//! tapes, or into keys in clear: keys take a blake3 hash of their values, and stored previews
//! show `<redacted>`. `Set-Cookie` is dropped from stored responses. Credentials in a URL
//! (`https://user:pass@host/`) are taken out of it and sent as an `Authorization: Basic` header,
//! a secret like any other: every URL devstash shows, stores or logs has none.

use std::str::FromStr;
use std::time::{Duration, Instant};

use devstash_protocol::{
    HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResult, is_secret_header,
};
use url::Url;

/// Default timeout of a request that sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body taken, in bytes.
pub const MAX_RESPONSE: u64 = 256 << 20;
/// Site identity prefix of stored responses: `http::<host>`. No guest site may use it.
pub const SITE_PREFIX: &str = "http::";
/// Fingerprint of stored responses; bump when the key material changes.
const KEY_VERSION: &str = "http-key-1";
/// Fingerprint of tape keys ([`Prepared::tape_key`]); bump when their material changes.
const TAPE_KEY_VERSION: &str = "http-tape-key-1";

/// One `--allow-net` entry: `HOST[:PORT]`, with `*.example.com` for subdomains (Deno's rules:
/// no port means any port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: String,
    port: Option<u16>,
}

impl FromStr for HostRule {
    type Err = String;

    fn from_str(s: &str) -> Result<HostRule, String> {
        let bad = || format!("invalid --allow-net entry {s:?}: use HOST, HOST:PORT or *.DOMAIN");
        let s = s.trim();
        // `[::1]:8080` and `[::1]` for IPv6.
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad()))
            .transpose()?;
        Ok(HostRule {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl HostRule {
    fn allows(&self, host: &str, port: u16) -> bool {
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// Which hosts the guest may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Allow {
    /// None (the default).
    #[default]
    Nothing,
    /// Every host (`--allow-net` without a list).
    Every,
    /// These (`--allow-net=HOST,...`); never empty.
    Hosts(Vec<HostRule>),
}

/// What the guest may reach.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Which hosts.
    pub allow: Allow,
    /// Extra secret header names (`--redact-header`), lowercase.
    pub redact: Vec<String>,
    /// The key secret header values are hashed with in stored responses' keys (the user's, see
    /// `home::Keys`), so that a key does not let anyone guess a weak secret offline.
    pub secret_key: [u8; 32],
}

impl NetPolicy {
    fn is_secret(&self, name: &str) -> bool {
        is_secret_header(name) || self.redact.iter().any(|r| r.eq_ignore_ascii_case(name))
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        match &self.allow {
            Allow::Nothing => false,
            Allow::Every => true,
            Allow::Hosts(rules) => rules.iter().any(|r| r.allows(host, port)),
        }
    }
}

/// A request checked and ready: its URL parsed (without credentials), its key material derived.
pub struct Prepared {
    /// The request as the guest sent it, less the credentials of its URL (which are in an
    /// `Authorization` header instead).
    pub request: HttpRequest,
    /// The URL, without credentials: what is shown, stored and logged.
    url: Url,
    host: String,
    port: u16,
}

fn error(kind: HttpErrorKind, message: impl Into<String>) -> HttpError {
    HttpError {
        kind,
        message: message.into(),
    }
}

impl Prepared {
    /// Checks the URL and method, and moves credentials out of the URL into a header.
    pub fn new(mut request: HttpRequest) -> Result<Prepared, HttpError> {
        let mut url = Url::parse(&request.url).map_err(|e| {
            error(
                HttpErrorKind::InvalidRequest,
                // The URL may hold a password: only its length is shown.
                format!("invalid URL ({} characters): {e}", request.url.len()),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            use base64::prelude::{BASE64_STANDARD, Engine as _};
            let user = percent_decode(url.username());
            let pass = percent_decode(url.password().unwrap_or_default());
            let basic = BASE64_STANDARD.encode(format!("{user}:{pass}"));
            let has_auth = request
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            if !has_auth {
                request
                    .headers
                    .push(("Authorization".into(), format!("Basic {basic}")));
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            request.url = url.to_string();
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(error(
                HttpErrorKind::InvalidRequest,
                format!("{}: only http and https URLs are supported", request.url),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| {
                error(
                    HttpErrorKind::InvalidRequest,
                    format!("{}: no host", request.url),
                )
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        if request.method.is_empty() || !request.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(error(
                HttpErrorKind::InvalidRequest,
                format!("invalid method {:?}", request.method),
            ));
        }
        Ok(Prepared {
            request,
            url,
            host,
            port,
        })
    }

    /// The URL without credentials, as shown, stored and logged.
    pub fn shown_url(&self) -> &str {
        self.url.as_str()
    }

    /// Site identity of stored responses for this request: `http::<host>`.
    pub fn site(&self) -> String {
        format!("{SITE_PREFIX}{}", self.host)
    }

    /// The key: method, URL, body and the headers that shape the response (names lowercased,
    /// sorted; secret values as blake3 hashes, so another key gets another entry without the
    /// secret being stored).
    pub fn key(&self, policy: &NetPolicy) -> [u8; 32] {
        self.key_with(policy, KEY_VERSION, |secret| {
            Some(format!(
                "keyed-blake3:{}",
                blake3::keyed_hash(&policy.secret_key, secret.as_bytes()).to_hex()
            ))
        })
    }

    /// The key of this exchange on a tape: like [`Prepared::key`], but with secret headers
    /// present by name only. A tape stores the environment with secrets redacted, so a replayed
    /// program sends a placeholder where the recorded one sent the real token, and its requests
    /// must still match.
    pub fn tape_key(&self, policy: &NetPolicy) -> [u8; 32] {
        self.key_with(policy, TAPE_KEY_VERSION, |_| None)
    }

    /// blake3 over method, URL, body and the sorted headers, each secret value replaced by what
    /// `secret` makes of it. Derived in its own blake3 mode, apart from the keys of marked calls:
    /// a guest, which chooses every input of those, can never make one equal to a response's.
    fn key_with(
        &self,
        policy: &NetPolicy,
        version: &str,
        secret: impl Fn(&str) -> Option<String>,
    ) -> [u8; 32] {
        let mut headers: Vec<(String, Option<String>)> = self
            .request
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if policy.is_secret(k) {
                    secret(v)
                } else {
                    Some(v.clone())
                };
                (k.to_ascii_lowercase(), v)
            })
            .collect();
        headers.sort();
        let material = (
            &self.request.method,
            self.url.as_str(),
            &self.request.body,
            headers,
        );
        let args = devstash_protocol::codec::encode(&material).expect("plain data encodes");
        let mut h = blake3::Hasher::new_derive_key("devstash 2026-11 http response key");
        for part in [version.as_bytes(), self.site().as_bytes(), &args] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        *h.finalize().as_bytes()
    }

    /// A one-line description with secret values redacted, for previews and messages.
    pub fn preview(&self, policy: &NetPolicy) -> String {
        let mut s = format!("{} {}", self.request.method, self.url);
        let secrets: Vec<&str> = self
            .request
            .headers
            .iter()
            .filter(|(k, _)| policy.is_secret(k))
            .map(|(k, _)| k.as_str())
            .collect();
        if !secrets.is_empty() {
            s.push_str(&format!(" ({}: <redacted>)", secrets.join(", ")));
        }
        s
    }

    /// Refuses a host that is not allowed, naming the flag to pass.
    pub fn check_allowed(&self, policy: &NetPolicy) -> Result<(), HttpError> {
        if policy.allows(&self.host, self.port) {
            return Ok(());
        }
        let shown = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        Err(error(
            HttpErrorKind::NotAllowed,
            format!(
                "{} {}: requests to {shown} are not allowed; run with --allow-net={} (or --allow-net={shown})",
                self.request.method, self.url, self.host
            ),
        ))
    }

    /// Makes the request, taking a response body of at most `limit` bytes. Redirects are not
    /// followed (a 3xx is returned as it is), so a redirect can never lead outside the allowed
    /// hosts.
    pub fn perform(&self, limit: u64) -> HttpResult {
        let timeout = self
            .request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TIMEOUT);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(self.request.method.as_str())
            .uri(self.url.as_str());
        for (k, v) in &self.request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(self.request.body.clone())
            .map_err(|e| error(HttpErrorKind::InvalidRequest, format!("{}: {e}", self.url)))?;
        let started = Instant::now();
        let mut response = agent
            .run(request)
            .map_err(|e| self.failure(e, timeout, limit))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.failure(e, timeout, limit))?;
        tracing::debug!(
            "{} {} -> {status} in {:?}",
            self.request.method,
            self.url,
            started.elapsed()
        );
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn failure(&self, e: ureq::Error, timeout: Duration, limit: u64) -> HttpError {
        let what = format!("{} {}", self.request.method, self.url);
        match e {
            ureq::Error::Timeout(_) => error(
                HttpErrorKind::Timeout,
                format!(
                    "{what}: no answer within {}",
                    crate::output::human_duration(timeout)
                ),
            ),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => error(
                HttpErrorKind::Connect,
                format!("{what}: cannot connect ({e})"),
            ),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => error(
                HttpErrorKind::Timeout,
                format!(
                    "{what}: no answer within {}",
                    crate::output::human_duration(timeout)
                ),
            ),
            ureq::Error::Io(io) => error(HttpErrorKind::Connect, format!("{what}: {io}")),
            ureq::Error::BodyExceedsLimit(_) => error(
                HttpErrorKind::Other,
                format!(
                    "{what}: the response is larger than {}{}",
                    crate::output::human_size(limit),
                    if limit < MAX_RESPONSE {
                        " (what --max-memory leaves)"
                    } else {
                        ""
                    }
                ),
            ),
            other => error(HttpErrorKind::Other, format!("{what}: {other}")),
        }
    }
}

/// `%40` -> `@`, as a URL's user and password are written.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A response as it is stored: without `Set-Cookie` (a secret the server handed out).
pub fn storable(response: &HttpResponse) -> HttpResponse {
    HttpResponse {
        status: response.status,
        headers: response
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("set-cookie"))
            .cloned()
            .collect(),
        body: response.body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> NetPolicy {
        NetPolicy {
            allow: Allow::Hosts(list.iter().map(|s| s.parse().unwrap()).collect()),
            redact: vec!["x-secret".into()],
            secret_key: [5; 32],
        }
    }

    #[test]
    fn allow_list_follows_deno() {
        let p = rules(&["example.com", "*.api.dev", "127.0.0.1:8080", "[::1]:9"]);
        assert!(p.allows("example.com", 443) && p.allows("example.com", 80));
        assert!(!p.allows("www.example.com", 443));
        assert!(p.allows("a.api.dev", 443) && p.allows("b.c.api.dev", 1));
        assert!(!p.allows("api.dev", 443) && !p.allows("evilapi.dev", 443));
        assert!(p.allows("127.0.0.1", 8080) && !p.allows("127.0.0.1", 8081));
        assert!(p.allows("::1", 9));
        assert!(!NetPolicy::default().allows("example.com", 443));
        assert!(
            NetPolicy {
                allow: Allow::Every,
                ..NetPolicy::default()
            }
            .allows("any.where", 1)
        );
        for bad in ["", "a/b", "host:port", "[::1", "user@host"] {
            assert!(bad.parse::<HostRule>().is_err(), "{bad}");
        }
    }

    fn request(headers: &[(&str, &str)]) -> Prepared {
        Prepared::new(HttpRequest {
            method: "GET".into(),
            url: "http://127.0.0.1:8080/x".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![],
            timeout_ms: None,
            cache: None,
        })
        .unwrap()
    }

    #[test]
    fn keys_see_secrets_only_as_hashes() {
        let p = rules(&[]);
        let a = request(&[("Authorization", "Bearer one"), ("Accept", "a")]);
        let b = request(&[("Authorization", "Bearer two"), ("Accept", "a")]);
        let c = request(&[("accept", "a"), ("authorization", "Bearer one")]);
        assert_ne!(a.key(&p), b.key(&p));
        assert_eq!(a.key(&p), c.key(&p), "header order and case do not matter");
        let preview = request(&[("Authorization", "Bearer one"), ("X-Secret", "s3")]).preview(&p);
        assert!(
            !preview.contains("one") && !preview.contains("s3"),
            "{preview}"
        );
        assert!(preview.contains("<redacted>"));
    }

    #[test]
    fn url_credentials_become_a_secret_header() {
        let p = rules(&[]);
        let r = Prepared::new(HttpRequest {
            method: "GET".into(),
            url: "http://us%40er:PASS1234@127.0.0.1:8080/x".into(),
            headers: vec![],
            body: vec![],
            timeout_ms: None,
            cache: None,
        })
        .unwrap();
        assert_eq!(r.shown_url(), "http://127.0.0.1:8080/x");
        assert!(!r.request.url.contains("PASS1234"));
        assert!(!r.preview(&p).contains("PASS1234"));
        let auth = r
            .request
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .map(|(_, v)| v.as_str());
        // base64 of `us@er:PASS1234`
        assert_eq!(auth, Some("Basic dXNAZXI6UEFTUzEyMzQ="));
        // The same request with the header written out has the same keys.
        let explicit = request(&[("Authorization", "Basic dXNAZXI6UEFTUzEyMzQ=")]);
        assert_eq!(r.key(&p), explicit.key(&p));
        // Another user key, another response key: a secret cannot be guessed from a key alone.
        let other = NetPolicy {
            secret_key: [6; 32],
            ..rules(&[])
        };
        assert_ne!(r.key(&p), r.key(&other));
        // No guest site key can equal a response key.
        let guest = devstash_protocol::entry_key(&r.site(), KEY_VERSION, "", b"");
        assert_ne!(guest, r.key(&p));
        // Every character a password may hold comes through as written.
        let odd = Prepared::new(HttpRequest {
            method: "GET".into(),
            url: "http://u:p&s%3Ds+1@127.0.0.1/".into(),
            headers: vec![],
            body: vec![],
            timeout_ms: None,
            cache: None,
        })
        .unwrap();
        let auth = odd
            .request
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization");
        // base64 of `u:p&s=s+1`
        assert_eq!(auth.map(|(_, v)| v.as_str()), Some("Basic dTpwJnM9cysx"));
    }

    #[test]
    fn tape_keys_ignore_secret_values_only() {
        let p = rules(&[]);
        let a = request(&[("Authorization", "Bearer one"), ("Accept", "a")]);
        let b = request(&[("authorization", "<redacted by devstash>"), ("accept", "a")]);
        assert_eq!(
            a.tape_key(&p),
            b.tape_key(&p),
            "secret values do not matter"
        );
        assert_ne!(a.key(&p), b.key(&p), "the cache key still tells them apart");
        let no_auth = request(&[("Accept", "a")]);
        assert_ne!(a.tape_key(&p), no_auth.tape_key(&p), "secret names do");
        let other = request(&[("Authorization", "Bearer one"), ("Accept", "b")]);
        assert_ne!(
            a.tape_key(&p),
            other.tape_key(&p),
            "other headers' values do"
        );
        let custom = request(&[("X-Secret", "s1")]);
        let custom2 = request(&[("x-secret", "s2")]);
        assert_eq!(
            custom.tape_key(&p),
            custom2.tape_key(&p),
            "--redact-header names too"
        );
        assert_ne!(a.tape_key(&p), a.key(&p));
    }

    #[test]
    fn bad_requests_are_refused_before_any_socket() {
        for url in ["ftp://x/y", "not a url", "http://"] {
            let r = Prepared::new(HttpRequest {
                method: "GET".into(),
                url: url.into(),
                headers: vec![],
                body: vec![],
                timeout_ms: None,
                cache: None,
            });
            assert!(
                matches!(
                    r,
                    Err(HttpError {
                        kind: HttpErrorKind::InvalidRequest,
                        ..
                    })
                ),
                "{url}"
            );
        }
        let e = request(&[])
            .check_allowed(&NetPolicy::default())
            .unwrap_err();
        assert_eq!(e.kind, HttpErrorKind::NotAllowed);
        assert!(e.message.contains("--allow-net=127.0.0.1"), "{}", e.message);
    }
}
