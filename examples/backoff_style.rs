//! A Python notebook's `backoff` decorator around an OpenAI call, in Rust:
//! `cargo run --example backoff_style`.
//!
//! The Python original:
//!
//! ```python
//! @backoff.on_exception(
//!     wait_gen=backoff.expo, exception=(RateLimitError, APITimeoutError), max_time=60
//! )
//! async def do_call(*, model, messages, **kwargs) -> None:
//!     await client.chat.completions.create(model=model, messages=messages)
//! ```
//!
//! The error types keep the OpenAI SDK's names, so that the `retry_on` list reads like the
//! `exception=` tuple. The client is a minimal stand-in for `AsyncOpenAI`, talking to the
//! workspace's fake provider on 127.0.0.1.
//!
//! One difference in behaviour: the runtime honours a server's `Retry-After` (Python's `backoff`
//! does not), and gives up at once when that wait would end past `max_time`.
//!
//! `max_time = 60` is kept as written; the backoff is scaled down 100x (10 ms, 20 ms, 40 ms, ...
//! instead of 1 s, 2 s, 4 s) so that the example runs in well under a second.

use std::process::ExitCode;
use std::time::Duration;

use retry_runtime::{retry_on_failure, GiveUpEvent, RetryEvent, Retryable};
use retry_workspace::fake_provider::{FakeProvider, Recorded, Reply};
use serde_json::{json, Value};

// --- the OpenAI SDK's error types -------------------------------------------------------------

/// `openai.RateLimitError`: a 429.
#[derive(Debug, thiserror::Error)]
#[error("Error code: 429 - {message}")]
pub struct RateLimitError {
    /// The provider's message.
    pub message: String,
    /// The wait the provider asked for.
    pub retry_after: Option<Duration>,
}

/// `openai.APITimeoutError`: no answer within the client's timeout.
#[derive(Debug, thiserror::Error)]
#[error("Request timed out.")]
pub struct APITimeoutError;

/// `openai.APIStatusError` and its other subclasses (`InternalServerError`, `BadRequestError`,
/// `AuthenticationError`, ...).
#[derive(Debug, thiserror::Error)]
#[error("Error code: {status} - {message}")]
pub struct APIStatusError {
    /// The HTTP status.
    pub status: u16,
    /// The provider's message.
    pub message: String,
}

/// `openai.APIConnectionError`.
#[derive(Debug, thiserror::Error)]
#[error("Connection error: {0}")]
pub struct APIConnectionError(#[source] pub reqwest::Error);

/// Every error of the client. Each variant's error is its `source()`, where `retry_on` finds it.
#[derive(Debug, thiserror::Error)]
pub enum OpenAIError {
    /// See [`RateLimitError`].
    #[error("RateLimitError: {0}")]
    RateLimit(#[from] RateLimitError),
    /// See [`APITimeoutError`].
    #[error("APITimeoutError: {0}")]
    Timeout(#[from] APITimeoutError),
    /// See [`APIStatusError`].
    #[error("APIStatusError: {0}")]
    Status(#[from] APIStatusError),
    /// See [`APIConnectionError`].
    #[error("APIConnectionError: {0}")]
    Connection(#[from] APIConnectionError),
}

/// The SDK's own view of what is worth retrying. With `retry_on = [..]` the list decides
/// instead; this impl still supplies the server's `Retry-After`.
impl Retryable for OpenAIError {
    fn is_retryable(&self) -> bool {
        match self {
            OpenAIError::RateLimit(_) | OpenAIError::Timeout(_) | OpenAIError::Connection(_) => {
                true
            }
            OpenAIError::Status(e) => matches!(e.status, 408 | 409 | 500..=599),
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            OpenAIError::RateLimit(e) => e.retry_after,
            _ => None,
        }
    }
}

// --- a minimal AsyncOpenAI ----------------------------------------------------------------------

/// `dict(role=..., content=...)`.
pub struct Message {
    /// `user`, `system`, `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: &str) -> Self {
        Message {
            role: "user",
            content: content.to_owned(),
        }
    }
}

/// The answer's text.
#[derive(Debug)]
pub struct ChatCompletion {
    /// `choices[0].message.content`.
    pub content: String,
}

/// `AsyncOpenAI(base_url=..., api_key=..., timeout=...)`.
pub struct AsyncOpenAI {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    timeout: Duration,
}

impl AsyncOpenAI {
    /// A client of the API at `base_url`, each request limited to `timeout`.
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(AsyncOpenAI {
            http: reqwest::Client::builder().build()?,
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            timeout,
        })
    }

    /// `client.chat.completions.create(model=..., messages=...)`, without retries of its own.
    pub async fn create_chat_completion(
        &self,
        model: &str,
        messages: &[Message],
    ) -> Result<ChatCompletion, OpenAIError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        let transport = |e: reqwest::Error| -> OpenAIError {
            if e.is_timeout() {
                APITimeoutError.into()
            } else {
                APIConnectionError(e).into()
            }
        };
        let response = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(&self.api_key)
            .timeout(self.timeout)
            .json(&json!({ "model": model, "messages": messages }))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = retry_runtime::retry_after::from_headers(response.headers());
        let body: Value = response.json().await.map_err(transport)?;
        let text = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match status {
            200..=299 => Ok(ChatCompletion {
                content: text("/choices/0/message/content"),
            }),
            429 => Err(RateLimitError {
                message: text("/error/message"),
                retry_after,
            }
            .into()),
            status => Err(APIStatusError {
                status,
                message: text("/error/message"),
            }
            .into()),
        }
    }
}

// --- the notebook's do_call -----------------------------------------------------------------

/// The decorated function. `backoff.expo` starts at 1 s and doubles without a cap, with full
/// jitter by default; here it starts at 10 ms (scaled down 100x). `backoff` has no attempt limit
/// when only `max_time` is given: `max_attempts` is set high enough that `max_time` ends the call.
#[retry_on_failure(
    backoff = "exponential",
    initial_delay = 0.01,
    max_delay = 60,
    jitter = "full",
    max_attempts = 1000,
    max_time = 60,
    retry_on = [RateLimitError, APITimeoutError],
    on_retry = on_backoff,
    on_give_up = on_giveup,
)]
pub async fn do_call(
    client: &AsyncOpenAI,
    model: &str,
    messages: &[Message],
) -> Result<ChatCompletion, OpenAIError> {
    client.create_chat_completion(model, messages).await
}

/// `backoff`'s `on_backoff` handler, worded like its default log line.
fn on_backoff(err: &OpenAIError, event: &RetryEvent) {
    println!(
        "   Backing off do_call(...) for {:.3}s after {} tries ({err})",
        event.delay.as_secs_f64(),
        event.attempt
    );
}

/// `backoff`'s `on_giveup` handler.
fn on_giveup(err: &OpenAIError, event: &GiveUpEvent) {
    println!(
        "   Giving up do_call(...) after {} tries: {} ({err})",
        event.attempts, event.reason
    );
}

// --- the scenarios --------------------------------------------------------------------------

/// The model the notebook asks for.
pub const GPT_4O_MINI: &str = "gpt-4o-mini";
/// The client's per-request timeout: an answer slower than this is an `APITimeoutError`.
pub const TIMEOUT: Duration = Duration::from_millis(200);
const KEY: &str = "sk-demo-key";

/// The fake provider and a client of it.
pub struct Demo {
    /// The server.
    pub fake: FakeProvider,
    /// `client = AsyncOpenAI()`.
    pub client: AsyncOpenAI,
}

/// One call: its result and the requests the server saw.
pub struct Outcome {
    /// What `do_call` returned.
    pub result: Result<ChatCompletion, OpenAIError>,
    /// The attempts, as the server saw them.
    pub requests: Vec<Recorded>,
    /// How long the call took.
    pub took: Duration,
}

impl Outcome {
    /// The status of each attempt, as the server answered it.
    pub fn statuses(&self) -> Vec<u16> {
        self.requests.iter().map(|r| r.status).collect()
    }
}

impl Demo {
    /// Starts the fake provider and builds the client.
    pub async fn start() -> Result<Demo, Box<dyn std::error::Error>> {
        let fake = FakeProvider::start(KEY).await?;
        let client = AsyncOpenAI::new(&fake.base_url(), KEY, TIMEOUT)?;
        Ok(Demo { fake, client })
    }

    /// Rate limits and a timeout, then an answer: retried until it comes.
    pub async fn transient_errors(&self) -> Outcome {
        println!("\n1. RateLimitError, APITimeoutError, RateLimitError, then an answer");
        let slow = Reply::slow(Duration::from_secs(1), "late");
        self.call(vec![
            Reply::rate_limited_ms(5),
            slow,
            Reply::rate_limited_ms(5),
        ])
        .await
    }

    /// A 500 is not in `exception=(..)`: raised at once.
    pub async fn other_errors(&self) -> Outcome {
        println!("\n2. InternalServerError (500): not in retry_on, so not retried");
        self.call(vec![Reply::Status(500)]).await
    }

    /// A 429 asking for 61 s: waiting would end past `max_time = 60`, so the call gives up now.
    pub async fn past_max_time(&self) -> Outcome {
        println!("\n3. RateLimitError with Retry-After: 61, past max_time = 60");
        self.call(vec![Reply::rate_limited_secs(61)]).await
    }

    async fn call(&self, script: Vec<Reply>) -> Outcome {
        self.fake.script(script);
        self.fake.clear_requests();
        let started = tokio::time::Instant::now();
        let messages = [Message::user("Hey! Mista!")];
        let result = do_call(&self.client, GPT_4O_MINI, &messages).await;
        let outcome = Outcome {
            result,
            requests: self.fake.take_requests(),
            took: started.elapsed(),
        };
        let n = outcome.requests.len();
        match &outcome.result {
            Ok(c) => println!("   => returned after {n} tries: {:?}", c.content),
            Err(e) => println!("   => raised after {n} tries: {e}"),
        }
        outcome
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let demo = match Demo::start().await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    demo.transient_errors().await;
    demo.other_errors().await;
    demo.past_max_time().await;
    ExitCode::SUCCESS
}
