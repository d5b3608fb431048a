//! An OpenAI-compatible chat completion, stored so that asking the same thing again costs
//! nothing. The API key is a `devstash::Secret`: it is sent in the `Authorization` header, and
//! counts in the key by a keyed hash only, so it is never written to disk, to a tape, or to a
//! report.
//!
//! ```sh
//! devstash run --env OPENAI_API_KEY --env OPENAI_BASE_URL --allow-net=api.openai.com \
//!     target/wasm32-wasip1/release/llm.wasm "Name three rivers"
//! ```
//!
//! `OPENAI_BASE_URL` defaults to `https://api.openai.com/v1`, `OPENAI_MODEL` to `gpt-4o-mini`.

use devstash::{Secret, http, stashed};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message>,
    temperature: f32,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

/// An OpenAI-compatible endpoint. The whole client is part of every call's key (another model
/// or endpoint gives another answer), the API key by its keyed hash only.
#[derive(Debug, Serialize)]
struct Client {
    base: String,
    model: String,
    key: Secret<String>,
}

impl Client {
    /// One chat completion, kept for a week: the same question to the same model costs nothing
    /// twice. Errors are not stored, so a failed call is tried again next time.
    #[stashed(ttl = "1w")]
    fn ask(&self, prompt: &str) -> Result<String, http::Error> {
        let body = ChatRequest {
            model: &self.model,
            messages: vec![Message {
                role: "user".into(),
                content: prompt.to_string(),
            }],
            temperature: 0.0,
        };
        let chat: ChatResponse = http::Request::post(&format!(
            "{}/chat/completions",
            self.base.trim_end_matches('/')
        ))
        .bearer_auth(self.key.expose())
        .json(&body)
        .send()?
        .json()?;
        Ok(chat
            .choices
            .into_iter()
            .next()
            .map(|c| c.message.content)
            .unwrap_or_else(|| "(no answer)".into()))
    }
}

fn main() {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let prompt = if prompt.is_empty() {
        "Say hello in five words.".to_string()
    } else {
        prompt
    };
    let Ok(key) = std::env::var("OPENAI_API_KEY") else {
        eprintln!("set OPENAI_API_KEY and pass it to the program with --env OPENAI_API_KEY");
        std::process::exit(2);
    };
    let client = Client {
        base: std::env::var("OPENAI_BASE_URL")
            .unwrap_or_else(|_| "https://api.openai.com/v1".into()),
        model: std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()),
        key: Secret::new(key),
    };
    match client.ask(&prompt) {
        Ok(answer) => println!("{answer}"),
        Err(e) => {
            eprintln!("error ({:?}): {e}", e.kind);
            std::process::exit(1);
        }
    }
}
