//! Real servers on 127.0.0.1 for the remote cache tests: a Redis server, an S3 API (moto), and a
//! black hole (a listener that accepts connections and never answers). Each listens on a free
//! loopback port of its own and is killed when dropped (and, on Linux, when the test thread that
//! started it ends, should the test binary be killed before it drops them).
//!
//! `redis-server` and moto are installed by `.ci/run`. A missing one is a panic that says so,
//! never a skipped test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server may take to come up.
const STARTUP: Duration = Duration::from_secs(30);

/// A free loopback port (free when this returns: the servers retry on another if it is taken).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port")
        .port()
}

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn missing(what: &str) -> ! {
    panic!(
        "{what} is not installed: run `.ci/run` (it installs redis-server and moto), \
         or install it yourself and put it on PATH"
    )
}

/// Makes the server die with the thread that starts it (Linux), so that a test binary killed
/// before it drops its servers leaves none behind. Start servers from the test's own thread.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe, and the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Kills and reaps a server process.
fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A server's log, for a failure message.
fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

// ------------------------------------------------------------------------------------------
// Redis
// ------------------------------------------------------------------------------------------

/// A reply of a Redis server (RESP 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    /// A bulk string; `None` for a nil reply.
    Bulk(Option<Vec<u8>>),
    /// An array; `None` for a nil array.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The reply as text, as `redis-cli` would show it: arrays one item a line, nil as `(nil)`,
    /// an error with its `ERR …` message.
    pub fn text(&self) -> String {
        match self {
            Resp::Simple(s) | Resp::Error(s) => s.clone(),
            Resp::Int(n) => n.to_string(),
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Resp::Bulk(None) | Resp::Array(None) => "(nil)".to_string(),
            Resp::Array(Some(items)) => items.iter().map(Resp::text).collect::<Vec<_>>().join("\n"),
        }
    }
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    let num = || rest.parse::<i64>().map_err(|_| bad("a RESP length"));
    Ok(match kind {
        "+" => Resp::Simple(rest.to_string()),
        "-" => Resp::Error(rest.to_string()),
        ":" => Resp::Int(num()?),
        "$" => match num()? {
            n if n < 0 => Resp::Bulk(None),
            n => {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => match num()? {
            n if n < 0 => Resp::Array(None),
            n => Resp::Array(Some(
                (0..n).map(|_| read_resp(r)).collect::<Result<_, _>>()?,
            )),
        },
        _ => return Err(bad("a RESP reply")),
    })
}

/// A `redis-server` on 127.0.0.1, without persistence; killed when dropped.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `requirepass`, if the server was started with one.
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// [`RedisServer::start`], with clients required to authenticate with `password`.
    pub fn with_password(password: &str) -> RedisServer {
        RedisServer::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> RedisServer {
        let bin = on_path("redis-server").unwrap_or_else(|| missing("redis-server"));
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("redis.log");
            let mut cmd = Command::new(&bin);
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .args(password.map(|p| ["--requirepass", p]).into_iter().flatten())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            let child = cmd.spawn().expect("redis-server starts");
            let mut server = RedisServer {
                port,
                child: Some(child),
                dir,
                password: password.map(str::to_string),
            };
            let deadline = Instant::now() + STARTUP;
            while Instant::now() < deadline {
                if server.ping() {
                    return server;
                }
                if let Some(c) = server.child.as_mut()
                    && c.try_wait().ok().flatten().is_some()
                {
                    break; // exited: most likely the port was taken meanwhile; try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_log = log_of(&log);
            server.stop();
        }
        panic!("redis-server did not start; its log:\n{last_log}");
    }

    fn ping(&self) -> bool {
        matches!(self.try_request(&[b"PING"]), Ok(Resp::Simple(s)) if s == "PONG")
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` remote URL for this server, database 0, under `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("redis://127.0.0.1:{}/0/{prefix}", self.port)
    }

    /// Stops the server (an outage); its URL then points at a closed port.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Whether the server is still running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// One command on a fresh connection (database 0).
    pub fn try_request(&self, args: &[&[u8]]) -> std::io::Result<Resp> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        if let Some(pw) = &self.password {
            let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len());
            stream.write_all(auth.as_bytes())?;
            read_resp(&mut reader)?;
        }
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        stream.write_all(&req)?;
        read_resp(&mut reader)
    }

    /// One command; panics when the server cannot be reached.
    pub fn request(&self, args: &[&[u8]]) -> Resp {
        self.try_request(args)
            .unwrap_or_else(|e| panic!("redis on port {}: {e}", self.port))
    }

    /// One command given as text, its reply as text (see [`Resp::text`]): `cmd(&["DBSIZE"])`.
    pub fn cmd(&self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.request(&args).text()
    }

    /// Every key of database 0, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match self.request(&[b"KEYS", b"*"]) {
            Resp::Array(Some(items)) => items.iter().map(Resp::text).collect::<Vec<_>>(),
            other => panic!("KEYS *: {other:?}"),
        };
        keys.sort();
        keys
    }

    /// The value of a string key, `None` when it does not exist.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.request(&[b"GET", key.as_bytes()]) {
            Resp::Bulk(v) => v,
            other => panic!("GET {key}: {other:?}"),
        }
    }

    /// Sets a string key.
    pub fn set(&self, key: &str, value: &[u8]) {
        let reply = self.request(&[b"SET", key.as_bytes(), value]);
        assert_eq!(reply, Resp::Simple("OK".into()), "SET {key}");
    }

    /// Deletes a key.
    pub fn del(&self, key: &str) {
        self.request(&[b"DEL", key.as_bytes()]);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        log_of(&self.dir.path().join("redis.log"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ------------------------------------------------------------------------------------------
// S3 (moto)
// ------------------------------------------------------------------------------------------

/// The credentials tests give devstash for moto (which accepts any).
pub const AWS_ACCESS_KEY_ID: &str = "devstash-test-access-key";
pub const AWS_SECRET_ACCESS_KEY: &str = "devstash-test-secret-key";
pub const AWS_REGION: &str = "us-east-1";

/// How to start moto's server: `moto_server` on PATH, the virtual environment `.ci/run` makes
/// when the system Python refuses installs, or `python3 -m moto.server`.
fn moto_command() -> Command {
    if let Some(bin) = on_path("moto_server") {
        return Command::new(bin);
    }
    let venv = super::workspace().join("target/ci-venv/bin/moto_server");
    if is_executable(&venv) {
        return Command::new(venv);
    }
    let importable = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "moto.server"]);
        return cmd;
    }
    missing("moto (`moto_server`, from `pip install 'moto[server]'`)")
}

/// An S3 API (moto's server) on 127.0.0.1 with one bucket, [`MotoServer::BUCKET`]; killed when
/// dropped. Raw objects are read and written with plain HTTP (moto checks no signature, but
/// wants an `Authorization` header to serve a private object).
pub struct MotoServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl MotoServer {
    pub const BUCKET: &'static str = "devstash-test";

    /// Starts moto on a free port, waits until it answers HTTP, and creates the bucket.
    pub fn start() -> MotoServer {
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("moto.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let mut cmd = moto_command();
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_remove("HTTP_PROXY")
                .env_remove("http_proxy")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file);
            die_with_parent(&mut cmd);
            let child = cmd.spawn().expect("moto starts");
            let mut server = MotoServer {
                port,
                child: Some(child),
                dir,
                agent: agent.clone(),
            };
            let deadline = Instant::now() + STARTUP;
            while Instant::now() < deadline {
                if server.http("GET", "/", None).is_some() {
                    let (status, body) = server
                        .http("PUT", &format!("/{}", Self::BUCKET), None)
                        .expect("moto answers");
                    assert_eq!(
                        status,
                        200,
                        "creating the bucket: {}",
                        String::from_utf8_lossy(&body)
                    );
                    return server;
                }
                if let Some(c) = server.child.as_mut()
                    && c.try_wait().ok().flatten().is_some()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last_log = log_of(&log);
            server.stop();
        }
        panic!("moto did not start; its log:\n{last_log}");
    }

    /// One request to moto: its status and body, `None` when it cannot be reached.
    fn http(&self, method: &str, path: &str, body: Option<&[u8]>) -> Option<(u16, Vec<u8>)> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        // Any signature does: moto only wants to see one before it serves a private object.
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/20250101/{AWS_REGION}/s3/aws4_request, \
             SignedHeaders=host, Signature=00"
        );
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("PUT", None) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_empty(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/octet-stream")
                .send(b),
            _ => unreachable!("{method}"),
        };
        let mut response = result.ok()?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .ok()?;
        Some((status, body))
    }

    fn http_ok(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
        self.http(method, path, body)
            .unwrap_or_else(|| panic!("moto on port {} does not answer", self.port))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint devstash is pointed at.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An `s3://` remote URL for the bucket, under `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region={AWS_REGION}",
            Self::BUCKET,
            self.endpoint()
        )
    }

    /// The environment a devstash run needs to reach this server (dummy credentials).
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
            ("AWS_REGION", AWS_REGION),
        ]
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Every object name in the bucket, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{}?list-type=2", Self::BUCKET);
            if let Some(t) = &token {
                path.push_str("&continuation-token=");
                path.push_str(&percent_encode(t));
            }
            let (status, body) = self.http_ok("GET", &path, None);
            let xml = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "listing the bucket: {xml}");
            keys.extend(xml_values(&xml, "Key"));
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() || !xml.contains("<IsTruncated>true</IsTruncated>") {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// An object's bytes, `None` when it does not exist.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (status, body) = self.http_ok(
            "GET",
            &format!("/{}/{}", Self::BUCKET, encode_key(key)),
            None,
        );
        match status {
            200 => Some(body),
            404 => None,
            s => panic!("GET {key}: {s} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Writes an object.
    pub fn put(&self, key: &str, value: &[u8]) {
        let (status, body) = self.http_ok(
            "PUT",
            &format!("/{}/{}", Self::BUCKET, encode_key(key)),
            Some(value),
        );
        assert_eq!(status, 200, "PUT {key}: {}", String::from_utf8_lossy(&body));
    }

    /// Deletes an object.
    pub fn delete(&self, key: &str) {
        self.http_ok(
            "DELETE",
            &format!("/{}/{}", Self::BUCKET, encode_key(key)),
            None,
        );
    }

    /// The server's log so far (one line a request).
    pub fn log(&self) -> String {
        log_of(&self.dir.path().join("moto.log"))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An object key in a path: each segment encoded, the slashes kept.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The text of every `<tag>…</tag>` in `xml`, entities decoded.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(
            rest[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &rest[end + close.len()..];
    }
    out
}

// ------------------------------------------------------------------------------------------
// Black hole
// ------------------------------------------------------------------------------------------

/// A TCP listener on 127.0.0.1 that accepts every connection and never answers nor closes one
/// until it is dropped: a server that hangs.
pub struct BlackHole {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: the loop ends when the test drops the listener, and after 120 s at most.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        held.push(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BlackHole {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
