//! aicore's `@retry_on_failure` provider, in Rust: `cargo run --example aicore_style`.
//!
//! The Python original (aicore's LLM module):
//!
//! ```python
//! @retry_on_failure(max_attempts=3, initial_delay=1.0, max_delay=10.0, backoff_factor=2.0)
//! async def complete(self, prompt: str) -> str: ...          # LLM_MAX_RETRIES etc. override
//!
//! class CustomProvider(LlmBaseProvider):
//!     @retry_on_failure(max_attempts=5, retry_on=(RateLimitError, TimeoutError),
//!                       give_up_on=(AuthenticationError,))
//!     async def acomplete(self, prompt: str) -> str: ...
//! ```
//!
//! What carries over: the settings in the attribute, overridable by `LLM_*` environment variables
//! (`env_prefix = "LLM"`); error classes to retry on or give up on, matched anywhere in the
//! error's `source()` chain; a circuit breaker per provider; statistics instead of an
//! observability collector. The provider is the workspace's fake one, on 127.0.0.1.
//!
//! Delays are scaled down so that the example runs in about a second: the `LLM_*` values below
//! are the seed's divided by about 75, and `complete_strict` waits 20 ms instead of 1 s.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::StatusCode;
use retry_runtime::{retry_on_failure, stats, CircuitBreaker, CircuitOpen, RetryPolicy, Retryable};
use retry_workspace::fake_provider::{FakeProvider, Recorded, Reply};
use serde_json::{json, Value};

// --- errors, one type per kind, as aicore raises them --------------------------------------------

/// 429: slow down.
#[derive(Debug, thiserror::Error)]
#[error("rate limited: {message}")]
pub struct RateLimitError {
    /// The provider's message.
    pub message: String,
    /// The wait the provider asked for (`retry-after-ms` or `Retry-After`).
    pub retry_after: Option<Duration>,
}

/// 401: a bad key.
#[derive(Debug, thiserror::Error)]
#[error("authentication failed: {message}")]
pub struct AuthenticationError {
    /// The provider's message.
    pub message: String,
}

/// No answer in time.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
pub struct TimeoutError(pub Duration);

/// Any other error status.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiStatusError {
    /// The status.
    pub status: StatusCode,
    /// The provider's message.
    pub message: String,
}

/// What the provider's methods return. Each variant wraps its error as the `source()`, which is
/// where `retry_on`/`give_up_on` look for the listed types.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// See [`RateLimitError`].
    #[error("{0}")]
    RateLimit(#[from] RateLimitError),
    /// See [`AuthenticationError`].
    #[error("{0}")]
    Authentication(#[from] AuthenticationError),
    /// See [`TimeoutError`].
    #[error("{0}")]
    Timeout(#[from] TimeoutError),
    /// See [`ApiStatusError`].
    #[error("{0}")]
    Status(#[from] ApiStatusError),
    /// The provider could not be reached.
    #[error("connection failed: {0}")]
    Connection(#[source] reqwest::Error),
    /// The breaker turned the call away without calling the provider.
    #[error("circuit breaker `{}` is open for another {:.0?}", .0.name, .0.retry_in)]
    CircuitOpen(#[from] CircuitOpen),
}

/// The base provider's table ("Retryable errors" in aicore's docs): timeouts, 408, 429, 5xx and
/// connection errors are retried; authentication, 400, 403, 404 are not.
impl Retryable for LlmError {
    fn is_retryable(&self) -> bool {
        match self {
            LlmError::RateLimit(_) | LlmError::Timeout(_) => true,
            LlmError::Status(e) => {
                retry_runtime::http::classify_status(e.status.as_u16()).is_retryable()
            }
            LlmError::Connection(e) => e.is_retryable(),
            LlmError::Authentication(_) | LlmError::CircuitOpen(_) => false,
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimit(e) => e.retry_after,
            _ => None,
        }
    }
    fn is_rate_limited(&self) -> bool {
        matches!(self, LlmError::RateLimit(_))
    }
}

// --- the provider ---------------------------------------------------------------------------

/// One breaker for every call to this provider: after 5 retryable failures in a row it opens for
/// 30 s, and calls fail at once with `LlmError::CircuitOpen` instead of piling onto an outage.
static OPENAI_BREAKER: CircuitBreaker = CircuitBreaker::new("openai")
    .failure_threshold(5)
    .cool_down(Duration::from_secs(30));

/// aicore's `LlmBaseProvider`, reduced to chat completions.
pub struct LlmProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    timeout: Duration,
}

impl LlmProvider {
    /// A provider at `base_url` (`http://host:port/v1`); each request may take `timeout`.
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(LlmProvider {
            http: reqwest::Client::builder().build()?,
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            timeout,
        })
    }

    /// The base provider's completion: the seed's settings, which the `LLM_*` variables override
    /// (read once, on the first call); a bad key is never retried; the breaker guards the
    /// provider.
    #[retry_on_failure(
        env_prefix = "LLM",
        max_attempts = 3,
        initial_delay = 1.0,
        max_delay = 10.0,
        backoff_factor = 2.0,
        give_up_on = [AuthenticationError],
        circuit_breaker = OPENAI_BREAKER,
        name = "llm.complete",
        stats = true,
    )]
    pub async fn complete(&self, prompt: &str) -> Result<String, LlmError> {
        self.request(prompt).await
    }

    /// The seed's `CustomProvider.acomplete`: only rate limits and timeouts are retried, up to 5
    /// attempts (20 ms apart at first here; 1 s in the seed, the default).
    #[retry_on_failure(
        max_attempts = 5,
        initial_delay = 0.02,
        retry_on = [RateLimitError, TimeoutError],
        give_up_on = [AuthenticationError],
        name = "llm.complete_strict",
        stats = true,
    )]
    pub async fn complete_strict(&self, prompt: &str) -> Result<String, LlmError> {
        self.request(prompt).await
    }

    /// One HTTP request, its failure sorted into the error types above.
    async fn request(&self, prompt: &str) -> Result<String, LlmError> {
        let response = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(&self.api_key)
            .timeout(self.timeout)
            .json(&json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": prompt }] }))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        let retry_after = retry_runtime::retry_after::from_headers(response.headers());
        let body: Value = response.json().await.map_err(|e| self.transport(e))?;
        if status.is_success() {
            let text = body
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str);
            return Ok(text.unwrap_or_default().to_owned());
        }
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Err(match status {
            StatusCode::UNAUTHORIZED => AuthenticationError { message }.into(),
            StatusCode::TOO_MANY_REQUESTS => RateLimitError {
                message,
                retry_after,
            }
            .into(),
            status => ApiStatusError { status, message }.into(),
        })
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            TimeoutError(self.timeout).into()
        } else {
            LlmError::Connection(e)
        }
    }
}

// --- the environment ------------------------------------------------------------------------

/// The `LLM_*` settings this example runs with: the seed's `export LLM_MAX_RETRIES=5` etc., with
/// the delays scaled down (1.5 s -> 20 ms, 15 s -> 200 ms).
pub const DEMO_ENV: [(&str, &str); 4] = [
    ("LLM_MAX_RETRIES", "5"),
    ("LLM_RETRY_INITIAL_DELAY", "0.02"),
    ("LLM_RETRY_MAX_DELAY", "0.2"),
    ("LLM_RETRY_BACKOFF_FACTOR", "2.0"),
];

/// Sets [`DEMO_ENV`] in this process: every variable with `overwrite`, else only those not set
/// already (so `LLM_MAX_RETRIES=2 cargo run --example aicore_style` shows 2 honoured instead).
/// A deployment would set them in its environment instead. They must be set before the first
/// call, which reads them once, and before other threads start (setting the environment while
/// another thread reads it through libc is a data race).
pub fn set_demo_environment(overwrite: bool) {
    for (name, value) in DEMO_ENV {
        if overwrite || std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }
}

// --- the scenarios --------------------------------------------------------------------------

/// The fake provider and two clients: a good key, and a bad one.
pub struct Demo {
    /// The server.
    pub fake: FakeProvider,
    /// A client with the right key.
    pub provider: LlmProvider,
    /// A client whose key the server rejects.
    pub bad_key: LlmProvider,
}

/// One call: its result and the requests the server saw.
pub struct Outcome {
    /// The call's result.
    pub result: Result<String, LlmError>,
    /// The attempts, as the server saw them.
    pub requests: Vec<Recorded>,
}

impl Outcome {
    /// The status of each attempt, as the server answered it.
    pub fn statuses(&self) -> Vec<u16> {
        self.requests.iter().map(|r| r.status).collect()
    }
}

const KEY: &str = "sk-demo-key";
/// Each request's timeout (the client's, like aicore's `timeout` setting).
pub const TIMEOUT: Duration = Duration::from_millis(200);

impl Demo {
    /// Starts the fake provider and builds the clients.
    pub async fn start() -> Result<Demo, Box<dyn std::error::Error>> {
        let fake = FakeProvider::start(KEY).await?;
        let provider = LlmProvider::new(&fake.base_url(), KEY, TIMEOUT)?;
        let bad_key = LlmProvider::new(&fake.base_url(), "sk-wrong-key", TIMEOUT)?;
        Ok(Demo {
            fake,
            provider,
            bad_key,
        })
    }

    /// `complete` against four failures: with `LLM_MAX_RETRIES=5` the fifth attempt answers
    /// (the compiled-in 3 would have given up).
    pub async fn env_allows_five_attempts(&self) -> Outcome {
        println!("\n1. complete(): 429, 503, a timeout and a 502, then an answer");
        let script = vec![
            Reply::rate_limited_ms(10),
            Reply::Unavailable,
            Reply::slow(Duration::from_secs(1), "late"),
            Reply::Status(502),
        ];
        self.call(script, self.provider.complete("Hello")).await
    }

    /// `complete` with a bad key: `give_up_on = [AuthenticationError]`, one attempt.
    pub async fn bad_key_gives_up(&self) -> Outcome {
        println!("\n2. complete() with a bad key: AuthenticationError is in give_up_on");
        self.call(vec![], self.bad_key.complete("Hello")).await
    }

    /// `complete_strict`: a 503 is not in `retry_on`, a 429 is.
    pub async fn strict_lists(&self) -> [Outcome; 2] {
        println!("\n3. complete_strict(): retry_on = [RateLimitError, TimeoutError]");
        println!("   a 503 is not in the list:");
        let unavailable = self
            .call(
                vec![Reply::Unavailable],
                self.provider.complete_strict("Hello"),
            )
            .await;
        println!("   a 429 is:");
        let limited = self
            .call(
                vec![Reply::rate_limited_ms(10)],
                self.provider.complete_strict("Hello"),
            )
            .await;
        [unavailable, limited]
    }

    /// An outage: five 503s in a row open the breaker; the next call is turned away.
    pub async fn outage_opens_the_breaker(&self) -> [Outcome; 2] {
        println!("\n4. complete() during an outage: the breaker opens after 5 failures in a row");
        let failing = self
            .call(
                vec![Reply::Unavailable; 10],
                self.provider.complete("Hello"),
            )
            .await;
        let rejected = self.call(vec![], self.provider.complete("Hello")).await;
        [failing, rejected]
    }

    async fn call(
        &self,
        script: Vec<Reply>,
        call: impl std::future::Future<Output = Result<String, LlmError>>,
    ) -> Outcome {
        self.fake.script(script);
        self.fake.clear_requests();
        let result = call.await;
        let outcome = Outcome {
            result,
            requests: self.fake.take_requests(),
        };
        let seen: Vec<String> = outcome
            .requests
            .iter()
            .map(|r| match r.slow {
                true => "too slow".to_owned(),
                false => r.status.to_string(),
            })
            .collect();
        let seen = match seen.len() {
            0 => "no request sent".to_owned(),
            1 => format!("1 attempt ({})", seen[0]),
            n => format!("{n} attempts ({})", seen.join(", ")),
        };
        match &outcome.result {
            Ok(text) => println!("   => Ok after {seen}: {text:?}"),
            Err(e) => println!("   => Err after {seen}: {e}"),
        }
        outcome
    }
}

// --- main -----------------------------------------------------------------------------------

fn main() -> ExitCode {
    // Before the runtime starts its threads, and before the first call reads them.
    set_demo_environment(false);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("Environment (read by complete() on its first call):");
    for (name, _) in DEMO_ENV {
        let value = std::env::var(name).unwrap_or_default();
        println!("   {name}={value}");
    }
    // The same variables read strictly, to show what they amount to (a bad value is an error
    // here; the attribute would keep its compiled-in setting and warn once instead).
    let policy = RetryPolicy::from_env("LLM")?;
    println!(
        "   -> max_attempts {} (compiled in: 3), initial_delay {:?}, max_delay {:?}",
        policy.max_attempts(),
        policy.initial_delay(),
        policy.max_delay()
    );
    let demo = Demo::start().await?;
    demo.env_allows_five_attempts().await;
    demo.bad_key_gives_up().await;
    demo.strict_lists().await;
    demo.outage_opens_the_breaker().await;
    println!("\nStatistics (retry_runtime::stats::snapshot()):\n");
    print!("{}", stats::snapshot());
    Ok(())
}
