//! An OpenAI-compatible chat completion, stored so that asking the same thing again costs
//! nothing. The API key travels in the `Authorization` header, which devstash never writes to
//! disk.
//!
//! ```sh
//! devstash run --env OPENAI_API_KEY --env OPENAI_BASE_URL --allow-net=api.openai.com \
//!     target/wasm32-wasip1/release/llm.wasm "Name three rivers"
//! ```
//!
//! `OPENAI_BASE_URL` defaults to `https://api.openai.com/v1`, `OPENAI_MODEL` to `gpt-4o-mini`.

use devstash::http;
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

fn main() {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let prompt = if prompt.is_empty() {
        "Say hello in five words.".to_string()
    } else {
        prompt
    };
    let base =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
    let model = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let Ok(key) = std::env::var("OPENAI_API_KEY") else {
        eprintln!("set OPENAI_API_KEY and pass it to the program with --env OPENAI_API_KEY");
        std::process::exit(2);
    };
    let body = ChatRequest {
        model: &model,
        messages: vec![Message {
            role: "user".into(),
            content: prompt,
        }],
        temperature: 0.0,
    };
    let answer = http::Request::post(&format!("{}/chat/completions", base.trim_end_matches('/')))
        .bearer_auth(&key)
        .json(&body)
        .stash("1w")
        .send()
        .and_then(|r| r.json::<ChatResponse>());
    match answer {
        Ok(chat) => match chat.choices.first() {
            Some(choice) => println!("{}", choice.message.content),
            None => println!("(no answer)"),
        },
        Err(e) => {
            eprintln!("error ({:?}): {e}", e.kind);
            std::process::exit(1);
        }
    }
}
