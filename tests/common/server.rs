//! A real HTTP server on 127.0.0.1 for the HTTP tests, counting the requests it receives.
//!
//! Routes: `/repos/x` (JSON, with a `Set-Cookie`), `/v1/chat/completions` (JSON), `/count` (the
//! number of requests received so far), `/fail` (500), `/slow` (answers after 2 s); anything
//! else 404.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running server; dropping it stops it.
pub struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
    /// Every `Authorization` header received, in order.
    pub authorizations: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, a, s) = (requests.clone(), authorizations.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: the loop ends when the test drops the server, and after 60 s at most.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                for h in req.headers() {
                    if h.field.equiv("Authorization") {
                        a.lock().unwrap().push(h.value.as_str().to_string());
                    }
                }
                let json =
                    tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                let cookie =
                    tiny_http::Header::from_bytes("Set-Cookie", "session=SESSIONSECRET").unwrap();
                let response = match req.url() {
                    "/repos/x" => tiny_http::Response::from_string(
                        r#"{"full_name":"octo/x","stargazers_count":42,"description":"a test repo"}"#,
                    )
                    .with_header(json)
                    .with_header(cookie),
                    "/v1/chat/completions" => tiny_http::Response::from_string(
                        r#"{"choices":[{"message":{"role":"assistant","content":"Hello from the local model."}}]}"#,
                    )
                    .with_header(json),
                    "/count" => tiny_http::Response::from_string(format!("request {n}")),
                    "/fail" => tiny_http::Response::from_string("boom").with_status_code(500),
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(2));
                        tiny_http::Response::from_string("late")
                    }
                    _ => tiny_http::Response::from_string("nope").with_status_code(404),
                };
                let _ = req.respond(response);
            }
        });
        Server {
            port,
            requests,
            authorizations,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The flag that allows this server.
    pub fn allow(&self) -> String {
        format!("--allow-net=127.0.0.1:{}", self.port)
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
