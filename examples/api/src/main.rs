//! Fetch a JSON document once and keep it for 24 hours (the Python devstash's GitHub example).
//! The host makes the request; the guest has no sockets.
//!
//! ```sh
//! devstash run --allow-net=api.github.com target/wasm32-wasip1/release/api.wasm \
//!     https://api.github.com/repos/rust-lang/rust
//! ```
//!
//! `API_TTL` (default `24h`) and `API_TIMEOUT_MS` change the TTL and the timeout; pass them with
//! `--env`.

use std::time::Duration;

use devstash::http;
use serde::Deserialize;

/// The fields of a GitHub repository this example shows.
#[derive(Debug, Deserialize)]
struct Repo {
    full_name: String,
    stargazers_count: u64,
    description: Option<String>,
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://api.github.com/repos/rust-lang/rust".into());
    let ttl = std::env::var("API_TTL").unwrap_or_else(|_| "24h".into());
    let mut request = http::Request::get(&url)
        .header("Accept", "application/json")
        .header("User-Agent", "devstash-example")
        .stash(&ttl);
    if let Some(ms) = std::env::var("API_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        request = request.timeout(Duration::from_millis(ms));
    }
    match request.send() {
        Ok(response) => match response.json::<Repo>() {
            Ok(repo) => println!(
                "{}: {} stars; {}",
                repo.full_name,
                repo.stargazers_count,
                repo.description.as_deref().unwrap_or("no description")
            ),
            Err(_) => println!("status {}, {} bytes", response.status, response.body.len()),
        },
        Err(e) => {
            eprintln!("error ({:?}): {e}", e.kind);
            std::process::exit(1);
        }
    }
}
