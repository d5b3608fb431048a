//! `host::call`: the one import of the CPython WASI runtime, through which the Python SDK
//! reaches the same host as the Rust SDK's `devstash` imports.
//!
//! The guest hands request bytes; the host answers by calling the guest's export
//! `host_alloc(len) -> ptr`, filling that buffer, and writing its address and length (u32 LE)
//! at the two out pointers. A request is one op byte and its operands (integers little
//! endian); `guest-sdk/python/PROTOCOL.md` has the table. A malformed request traps the
//! guest with a message, as a malformed call of the Rust SDK's imports does.

use devstash_protocol::{
    ABI_VERSION, HttpCache, HttpErrorKind, HttpRequest, SiteDesc, SiteKind, Status,
};
use serde::{Deserialize, Serialize};
use wasmtime::{Caller, Extern, Linker, Result, bail, format_err};

use super::{HasStash, MAX_HTTP_REQUEST, MAX_LOG, MAX_PREVIEW, MAX_SITE_DESC, memory, span};

/// The import's module and name.
pub const MODULE: &str = "host";
/// The import's name.
pub const NAME: &str = "call";
/// The guest export that allocates a response buffer.
const ALLOC: &str = "host_alloc";
/// What traps name.
const F: &str = "host::call";

/// A site as the Python SDK registers it (JSON).
#[derive(Deserialize)]
struct PySite {
    abi: u32,
    module: String,
    callee: String,
    file: String,
    line: u32,
    ttl_secs: Option<u64>,
    fingerprint: String,
    value_type: String,
    kind: String,
    types: String,
}

/// An HTTP request as the Python SDK sends it (JSON, then the body).
#[derive(Deserialize)]
struct PyRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    timeout_ms: Option<u64>,
    cache: Option<PyCache>,
}

#[derive(Deserialize)]
struct PyCache {
    ttl_secs: Option<u64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PyResult {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
    },
    Error {
        error: PyError,
    },
}

#[derive(Serialize)]
struct PyError {
    kind: &'static str,
    message: String,
}

/// What a request answers: bytes made here, or a hit whose value is read from the store
/// straight into the guest's buffer after one status byte.
enum Answer {
    Bytes(Vec<u8>),
    Value(u64),
}

/// Reads a little-endian integer of `N` bytes at the front of `rest`.
fn take<const N: usize>(rest: &mut &[u8], what: &str) -> Result<[u8; N]> {
    if rest.len() < N {
        bail!("{F}: the request is cut short before its {what}");
    }
    let (head, tail) = rest.split_at(N);
    *rest = tail;
    Ok(head.try_into().expect("split at N"))
}

fn kind_name(kind: HttpErrorKind) -> &'static str {
    match kind {
        HttpErrorKind::NotAllowed => "NotAllowed",
        HttpErrorKind::Offline => "Offline",
        HttpErrorKind::Connect => "Connect",
        HttpErrorKind::Timeout => "Timeout",
        HttpErrorKind::InvalidRequest => "InvalidRequest",
        HttpErrorKind::Other => "Other",
    }
}

/// Adds `host::call` to a linker whose store data implements [`HasStash`].
pub fn add_to_linker<T: HasStash + 'static>(linker: &mut Linker<T>) -> Result<()> {
    linker.func_wrap(
        MODULE,
        NAME,
        |mut caller: Caller<'_, T>,
         req_ptr: i32,
         req_len: i32,
         out_ptr: i32,
         out_len: i32|
         -> Result<i32> {
            let mem = memory(&mut caller, F)?;
            let answer = {
                let (data, state) = mem.data_and_store_mut(&mut caller);
                let r = span(F, "the request", req_ptr, req_len, data.len())?;
                span(F, "the response address slot", out_ptr, 4, data.len())?;
                span(F, "the response length slot", out_len, 4, data.len())?;
                dispatch(state, &data[r])?
            };
            let len = match &answer {
                Answer::Bytes(b) => b.len() as u64,
                Answer::Value(n) => n.saturating_add(1),
            };
            let len = u32::try_from(len).map_err(|_| {
                format_err!("{F}: a response of {len} bytes does not fit a 32-bit guest")
            })?;
            // Looked up once per run: a hit is a few microseconds, and the lookup by name
            // and type check was a noticeable part of it.
            let alloc = match caller.data_mut().stash().bridge_alloc.clone() {
                Some(f) => f,
                None => {
                    let f = match caller.get_export(ALLOC) {
                        Some(Extern::Func(f)) => f.typed::<i32, i32>(&caller)?,
                        _ => bail!("{F}: the guest exports no `{ALLOC}(len) -> ptr` for responses"),
                    };
                    caller.data_mut().stash().bridge_alloc = Some(f.clone());
                    f
                }
            };
            let ptr = alloc.call(&mut caller, len as i32)?;
            // A failed allocation (NULL) must not become a response written over the guest's
            // own data at address 0.
            if ptr == 0 && len > 0 {
                bail!("{F}: the guest could not allocate {len} bytes for a response");
            }
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let dst = span(F, "the response buffer", ptr, len as i32, data.len())?;
            let mut written = len;
            match answer {
                Answer::Bytes(b) => data[dst].copy_from_slice(&b),
                Answer::Value(_) => {
                    let dst = &mut data[dst];
                    dst[0] = Status::Hit as i32 as u8;
                    let status = state.stash().read_pending(F, 0, &mut dst[1..])?;
                    state.stash().pending = None;
                    if status == Status::Corrupt {
                        // The value failed verification as it was read: the guest asks again
                        // with REFRESH and gets a ticket.
                        dst[0] = Status::Corrupt as i32 as u8;
                        written = 1;
                    }
                }
            }
            let out_ptr = out_ptr as u32 as usize;
            let out_len = out_len as u32 as usize;
            data[out_ptr..out_ptr + 4].copy_from_slice(&(ptr as u32).to_le_bytes());
            data[out_len..out_len + 4].copy_from_slice(&written.to_le_bytes());
            Ok(0)
        },
    )?;
    Ok(())
}

/// Serves one request.
fn dispatch<T: HasStash>(state: &mut T, req: &[u8]) -> Result<Answer> {
    let Some((&op, mut rest)) = req.split_first() else {
        bail!("{F}: an empty request");
    };
    let host = state.stash();
    let empty = || Ok(Answer::Bytes(Vec::new()));
    match op {
        b'R' => {
            if rest.len() > MAX_SITE_DESC {
                bail!(
                    "{F}: a site descriptor of {} bytes is larger than {MAX_SITE_DESC}",
                    rest.len()
                );
            }
            let s: PySite = serde_json::from_slice(rest)
                .map_err(|e| format_err!("{F}: the site descriptor does not decode ({e})"))?;
            let kind = match s.kind.as_str() {
                "call" => SiteKind::Call,
                "fn" => SiteKind::Fn,
                k => bail!("{F}: a site of kind {k:?}; the kinds are \"call\" and \"fn\""),
            };
            let handle = host.register(SiteDesc {
                abi_version: s.abi,
                module_path: s.module,
                callee: s.callee,
                file: s.file,
                line: s.line,
                ttl_secs: s.ttl_secs,
                fingerprint: s.fingerprint,
                value_type: s.value_type,
                kind,
                types: s.types,
            })?;
            Ok(Answer::Bytes(handle.to_le_bytes().to_vec()))
        }
        b'G' => {
            let site = u32::from_le_bytes(take(&mut rest, "site handle")?);
            let flags = i32::from_le_bytes(take(&mut rest, "flags")?);
            let site = super::site_index(host, F, site as i32)?;
            let key = host.sites[site].hasher.key(rest);
            let (status, n) = host.get(site, key, rest, flags)?;
            Ok(match status {
                Status::Hit => Answer::Value(n),
                _ => {
                    let mut b = vec![status as i32 as u8];
                    b.extend_from_slice(&n.to_le_bytes());
                    Answer::Bytes(b)
                }
            })
        }
        b'P' => {
            let ticket = u64::from_le_bytes(take(&mut rest, "ticket")?);
            let plen = u32::from_le_bytes(take(&mut rest, "preview length")?) as usize;
            if rest.len() < plen {
                bail!("{F}: the request is cut short inside its preview");
            }
            let (preview, value) = rest.split_at(plen);
            let Some(t) = host.tickets.remove(&ticket) else {
                bail!("{F}: unknown ticket {ticket}");
            };
            let preview = (!preview.is_empty()).then(|| {
                let mut s = String::from_utf8_lossy(&preview[..preview.len().min(MAX_PREVIEW)])
                    .into_owned();
                if preview.len() > MAX_PREVIEW {
                    s.push('…');
                }
                s
            });
            let status = host.put(ticket, t, value, preview)?;
            Ok(Answer::Bytes((status as i32).to_le_bytes().to_vec()))
        }
        b'F' => {
            host.forget(u64::from_le_bytes(take(&mut rest, "ticket")?))?;
            empty()
        }
        b'B' | b'E' => {
            let ticket = u64::from_le_bytes(take(&mut rest, "ticket")?);
            host.timing(F, ticket, op == b'B')?;
            empty()
        }
        b'K' => Ok(Answer::Bytes(blake3::hash(rest).as_bytes().to_vec())),
        b'S' => Ok(Answer::Bytes(host.secret_hash(rest)?.to_vec())),
        b'H' => {
            if req.len() > MAX_HTTP_REQUEST {
                bail!(
                    "{F}: a request of {} bytes is larger than {MAX_HTTP_REQUEST}",
                    req.len()
                );
            }
            let jlen = u32::from_le_bytes(take(&mut rest, "JSON length")?) as usize;
            if rest.len() < jlen {
                bail!("{F}: the request is cut short inside its JSON");
            }
            let (json, body) = rest.split_at(jlen);
            let r: PyRequest = serde_json::from_slice(json)
                .map_err(|e| format_err!("{F}: the HTTP request does not decode ({e})"))?;
            let result = host.http(HttpRequest {
                method: r.method,
                url: r.url,
                headers: r.headers,
                body: body.to_vec(),
                timeout_ms: r.timeout_ms,
                cache: r.cache.map(|c| HttpCache {
                    ttl_secs: c.ttl_secs,
                }),
            })?;
            let (head, body) = match result {
                Ok(resp) => (
                    PyResult::Response {
                        status: resp.status,
                        headers: resp.headers,
                    },
                    resp.body,
                ),
                Err(e) => (
                    PyResult::Error {
                        error: PyError {
                            kind: kind_name(e.kind),
                            message: e.message,
                        },
                    },
                    Vec::new(),
                ),
            };
            let json = serde_json::to_vec(&head).map_err(|e| format_err!("{F}: {e}"))?;
            let mut out = Vec::with_capacity(4 + json.len() + body.len());
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
            out.extend_from_slice(&json);
            out.extend_from_slice(&body);
            Ok(Answer::Bytes(out))
        }
        b'L' => {
            let level = take::<1>(&mut rest, "level")?[0];
            let msg = String::from_utf8_lossy(&rest[..rest.len().min(MAX_LOG)]);
            super::log_line(level as i32, &msg);
            empty()
        }
        other => bail!(
            "{F}: unknown request {:?} (byte {other}); is the Python SDK from this devstash \
             (ABI {ABI_VERSION})?",
            other as char
        ),
    }
}
