//! The demo: `cargo run --example provider`.
//!
//! A local OpenAI-compatible server (the workspace's `FakeProvider`, on 127.0.0.1) fails on a
//! script: a 429 with `Retry-After`, a 503, an answer slower than the client waits for, a 401 for
//! a bad key, a 429 `insufficient_quota`, then an outage. An `OpenAiProvider` client calls it over
//! HTTP with reqwest through one `#[retry_on_failure]` method, printing each attempt as it
//! happens, and the run ends with the statistics the runtime kept.
//!
//! Delays are scaled down from a production setting (100 ms first backoff instead of 1 s, 300 ms
//! per attempt instead of 30 s, a 500 ms breaker cool-down instead of 30 s) so that the whole run
//! takes about three seconds; the one full second is the server's own `Retry-After: 1`.
//!
//! `tests/examples.rs` runs the same scenarios and checks what the server saw.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use retry_runtime::{
    retry_on_failure, stats, AttemptContext, AttemptTimedOut, CircuitBreaker, CircuitOpen,
    CircuitState, Classification, GiveUpEvent, GiveUpReason, RetryEvent, Retryable,
};
use retry_workspace::fake_provider::{FakeProvider, Recorded, Reply};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The key the fake provider accepts.
pub const API_KEY: &str = "sk-demo-key";
/// What the demo asks for.
pub const MODEL: &str = "gpt-4o-mini";
/// Each attempt's limit: the `attempt_timeout` below, in a form the demo can print.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);
/// How long the breaker stays open before it lets a probe call through.
pub const COOL_DOWN: Duration = Duration::from_millis(500);
/// Retryable failures in a row that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 3;

// --- the client ---------------------------------------------------------------------------------

/// A minimal OpenAI client: one method, retried by the attribute.
pub struct OpenAiProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    /// One breaker per client: after 3 retryable failures in a row, calls fail at once without
    /// touching the provider, until a probe call after the cool-down succeeds.
    breaker: CircuitBreaker,
}

impl OpenAiProvider {
    /// A client of the provider at `base_url` (`http://host:port/v1`) using `api_key`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, reqwest::Error> {
        Ok(OpenAiProvider {
            http: reqwest::Client::builder().build()?,
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            breaker: CircuitBreaker::new("openai")
                .failure_threshold(BREAKER_THRESHOLD)
                .cool_down(COOL_DOWN),
        })
    }

    /// The client's circuit breaker, to show its state.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// One chat completion: up to 4 attempts; backoff of 100 ms, 200 ms, 400 ms, ... (at most
    /// 2 s), each randomised between half and all of it ("equal" jitter), and never sooner than
    /// a server's `Retry-After`; 300 ms per attempt. Every attempt
    /// sends the call's `Idempotency-Key` and its retry count (`ctx`), so the provider can tell
    /// a retry from a new request.
    #[retry_on_failure(
        name = "openai.chat",
        max_attempts = 4,
        initial_delay = 0.1,
        max_delay = 2.0,
        jitter = "equal",
        attempt_timeout = 0.3,
        circuit_breaker = self.breaker,
        context = ctx,
        on_retry = log_retry,
        on_give_up = log_give_up,
        stats = true,
    )]
    pub async fn chat(&self, prompt: &str) -> Result<String, ApiError> {
        let started = Instant::now();
        let mut request = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(&self.api_key)
            .json(&json!({
                "model": MODEL,
                "messages": [{ "role": "user", "content": prompt }],
            }));
        for (name, value) in ctx.headers() {
            request = request.header(name, value.as_str());
        }
        let response = request.send().await.map_err(ApiError::Network)?;
        if !response.status().is_success() {
            return Err(ApiError::from_response(response).await);
        }
        let body: Value = response.json().await.map_err(ApiError::Network)?;
        let text = body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or(ApiError::Malformed("no choices[0].message.content"))?;
        log_success(ctx, started.elapsed());
        Ok(text.to_owned())
    }
}

// --- its error type -----------------------------------------------------------------------------

/// What a call to the provider can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The provider answered with an error status.
    #[error("{} {code}", status.as_u16())]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The OpenAI error code, such as `rate_limit_exceeded`.
        code: String,
        /// The provider's message.
        message: String,
        /// The verdict, decided once from the status, the headers and the code.
        class: Classification,
    },
    /// The attempt took longer than `attempt_timeout`.
    #[error("no answer within {:?}", .0.after)]
    Timeout(#[from] AttemptTimedOut),
    /// The client's circuit breaker turned the call away.
    #[error("circuit breaker `{}` is open; next probe in {}", .0.name, human(.0.retry_in))]
    CircuitOpen(#[from] CircuitOpen),
    /// The request could not be sent or the answer not read.
    #[error("network error: {0}")]
    Network(#[source] reqwest::Error),
    /// A 200 without a completion in it.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

impl ApiError {
    /// The error of a non-2xx response, classified by the runtime's HTTP table with the
    /// `Retry-After` headers, except what the table cannot know: OpenAI's 429
    /// `insufficient_quota` is a billing error, which no retry fixes.
    async fn from_response(response: reqwest::Response) -> ApiError {
        let status = response.status();
        let headers: HeaderMap = response.headers().clone();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let field = |name: &str| {
            body.pointer(&format!("/error/{name}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let code = field("code");
        let class = match code.as_str() {
            "insufficient_quota" => Classification::give_up(),
            _ => retry_runtime::http::classify(status, &headers),
        };
        ApiError::Status {
            status,
            code,
            message: field("message"),
            class,
        }
    }

    /// Why another attempt may (or may not) help, for the log.
    pub fn why(&self) -> String {
        match self {
            ApiError::Status { code, .. } if code == "insufficient_quota" => {
                "out of credit: a billing error, not a rate limit".into()
            }
            ApiError::Status { status, class, .. } => match status.as_u16() {
                429 => match class.retry_after_hint() {
                    Some(hint) => format!("rate limited; the server asked for {}", human(hint)),
                    None => "rate limited".into(),
                },
                401 => "a bad key fails every time".into(),
                500..=599 => "server errors are usually brief".into(),
                _ if class.is_retryable() => "retryable status".into(),
                _ => "the request itself is wrong".into(),
            },
            ApiError::Timeout(_) => "too slow; the next attempt may be faster".into(),
            ApiError::CircuitOpen(_) => "the provider was not called".into(),
            ApiError::Network(e) if e.is_retryable() => "the connection failed".into(),
            ApiError::Network(_) | ApiError::Malformed(_) => "the answer is unusable".into(),
        }
    }
}

impl Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { class, .. } => class.is_retryable(),
            ApiError::Timeout(t) => t.is_retryable(),
            ApiError::Network(e) => e.is_retryable(),
            ApiError::CircuitOpen(_) | ApiError::Malformed(_) => false,
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { class, .. } => class.retry_after_hint(),
            _ => None,
        }
    }
    fn is_rate_limited(&self) -> bool {
        matches!(self, ApiError::Status { class, .. } if class.is_rate_limited())
    }
}

// --- the log: one line per attempt --------------------------------------------------------------

/// `on_retry`: an attempt failed and the call will try again after `event.delay`.
fn log_retry(err: &ApiError, event: &RetryEvent) {
    attempt_line(
        event.attempt,
        &err.to_string(),
        &format!("retry in {}", human(event.delay)),
        &err.why(),
    );
}

/// `on_give_up`: the call returns `err`.
fn log_give_up(err: &ApiError, event: &GiveUpEvent) {
    let why = match event.reason {
        GiveUpReason::NotRetryable => err.why(),
        GiveUpReason::Exhausted => format!("all {} attempts failed", event.attempts),
        GiveUpReason::CircuitOpen => match err {
            // The breaker turned the attempt away before it was sent.
            ApiError::CircuitOpen(open) => {
                let why = format!("the breaker is open for another {}", human(open.retry_in));
                attempt_line(event.attempts + 1, "not sent", "give up", &why);
                return;
            }
            // This failure opened the breaker: a retry would only be turned away.
            _ => "this failure opened the breaker; a retry would be turned away".into(),
        },
        other => other.to_string(),
    };
    attempt_line(event.attempts, &err.to_string(), "give up", &why);
}

/// The body, after an attempt that succeeded.
fn log_success(ctx: &AttemptContext, took: Duration) {
    attempt_line(ctx.attempt(), &format!("200 OK in {}", human(took)), "", "");
}

/// `    attempt 1  503 service_unavailable  -> retry in 26ms: server errors are usually brief`
fn attempt_line(attempt: u32, what: &str, decision: &str, why: &str) {
    if decision.is_empty() {
        println!("   attempt {attempt}  {what}");
    } else {
        println!("   attempt {attempt}  {what:<23}  -> {decision}: {why}");
    }
}

/// `63ms`, `1s`, `1.04s`.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

// --- the scenarios ------------------------------------------------------------------------------

/// The fake provider and two clients of it: one with the right key, one with a wrong one.
pub struct Demo {
    /// The server; its `requests()` are what each scenario sent.
    pub fake: FakeProvider,
    /// A client with the right key.
    pub client: OpenAiProvider,
    /// A client with a key the server rejects.
    pub bad_key_client: OpenAiProvider,
}

/// One call of a scenario: what it returned, and what the server saw.
pub struct Outcome {
    /// The call's result.
    pub result: Result<String, ApiError>,
    /// The requests that reached the server during the call (its attempts).
    pub requests: Vec<Recorded>,
    /// How long the call took, sleeps included.
    pub took: Duration,
}

impl Outcome {
    /// The status of each attempt, as the server answered it.
    pub fn statuses(&self) -> Vec<u16> {
        self.requests.iter().map(|r| r.status).collect()
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The fake provider could not listen on 127.0.0.1.
    #[error("could not start the fake provider on 127.0.0.1: {0}")]
    Listen(#[from] std::io::Error),
    /// reqwest could not build a client.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Demo {
    /// Starts the fake provider and builds the clients.
    pub async fn start() -> Result<Demo, DemoError> {
        let fake = FakeProvider::start(API_KEY).await?;
        let client = OpenAiProvider::new(&fake.base_url(), API_KEY)?;
        let bad_key_client = OpenAiProvider::new(&fake.base_url(), "sk-wrong-key")?;
        Ok(Demo {
            fake,
            client,
            bad_key_client,
        })
    }

    /// Prints what the demo is about to do.
    pub fn introduce(&self) {
        println!(
            "A fake OpenAI-compatible provider is listening on {}; it fails on a script.\n\
             OpenAiProvider::chat calls it through #[retry_on_failure]: up to 4 attempts, backoff\n\
             of 100ms, 200ms, 400ms with jitter (never sooner than a Retry-After), {} per\n\
             attempt, and a circuit breaker that opens after {} failures in a row. Every attempt\n\
             sends the call's Idempotency-Key and x-stainless-retry-count headers.\n\
             Each line below is one attempt, printed as it happens.",
            self.fake.base_url(),
            human(ATTEMPT_TIMEOUT),
            BREAKER_THRESHOLD,
        );
    }

    /// Scenario 1, a 429 with `Retry-After: 1`: the retry waits at least the second the server
    /// asked for.
    pub async fn rate_limited(&self) -> Outcome {
        heading(1, "Rate limited: 429 with Retry-After: 1");
        self.call(&self.client, [Reply::rate_limited_secs(1)]).await
    }

    /// Scenario 2, a 503: retried after a short backoff.
    pub async fn unavailable(&self) -> Outcome {
        heading(2, "Server overloaded: 503 Service Unavailable");
        self.call(&self.client, [Reply::Unavailable]).await
    }

    /// Scenario 3, an answer that takes 2 s: the attempt is cut off at 300 ms and retried.
    pub async fn slow(&self) -> Outcome {
        heading(
            3,
            "Slow answer: 2 s, longer than the 300 ms an attempt may take",
        );
        let slow = Reply::slow(Duration::from_secs(2), "Sorry for the wait.");
        self.call(&self.client, [slow]).await
    }

    /// Scenario 4, a wrong key: 401, returned at once.
    pub async fn bad_key(&self) -> Outcome {
        heading(4, "Bad API key: 401 Unauthorized");
        self.call(&self.bad_key_client, []).await
    }

    /// Scenario 5, a 429 whose code is `insufficient_quota`: returned at once.
    pub async fn out_of_credit(&self) -> Outcome {
        heading(
            5,
            "Out of credit: 429 insufficient_quota (a 429 that is not a rate limit)",
        );
        self.call(&self.client, [Reply::InsufficientQuota]).await
    }

    /// Scenario 6: nothing goes wrong.
    pub async fn healthy(&self) -> Outcome {
        heading(6, "Healthy: 200 OK");
        self.call(&self.client, []).await
    }

    /// Scenario 7, an outage: three 503s in a row open the breaker, which turns the rest of that
    /// call and the next call away without touching the provider; after the cool-down a probe
    /// call goes through and closes it.
    pub async fn outage(&self) -> [Outcome; 3] {
        heading(7, "Outage: 503 after 503, until the circuit breaker opens");
        let first = self.call(&self.client, vec![Reply::Unavailable; 3]).await;
        println!("   -- the breaker is open: the next call fails at once, without a request");
        let second = self.call(&self.client, []).await;
        // Wait out what is left of the cool-down (and a little more, so the probe is admitted).
        if let CircuitState::Open { retry_in } = self.client.breaker().state() {
            tokio::time::sleep(retry_in + Duration::from_millis(5)).await;
        }
        println!(
            "   -- once the {} cool-down is over, the breaker lets one probe call through",
            human(COOL_DOWN)
        );
        let third = self.call(&self.client, []).await;
        let state = if self.client.breaker().is_closed() {
            "the probe succeeded: the breaker is closed again"
        } else {
            "the breaker is still not closed"
        };
        println!("   -- {state}");
        [first, second, third]
    }

    /// Scripts the provider, makes one call and prints its verdict.
    async fn call(
        &self,
        client: &OpenAiProvider,
        script: impl IntoIterator<Item = Reply>,
    ) -> Outcome {
        self.fake.script(script);
        self.fake.clear_requests();
        let started = Instant::now();
        let result = client.chat("Say hello.").await;
        let outcome = Outcome {
            result,
            requests: self.fake.take_requests(),
            took: started.elapsed(),
        };
        println!("{}", Verdict(&outcome));
        outcome
    }

    /// Every scenario, in order.
    pub async fn run_all(&self) -> Vec<Outcome> {
        let mut outcomes = vec![
            self.rate_limited().await,
            self.unavailable().await,
            self.slow().await,
            self.bad_key().await,
            self.out_of_credit().await,
            self.healthy().await,
        ];
        outcomes.extend(self.outage().await);
        outcomes
    }
}

fn heading(n: u32, title: &str) {
    println!("\n{n}. {title}");
}

/// The one-line verdict of a call.
struct Verdict<'a>(&'a Outcome);

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        let (verdict, value) = match &o.result {
            Ok(text) => ("Ok", format!("{text:?}")),
            Err(e @ ApiError::Status { message, .. }) => ("Err", format!("{e} {message:?}")),
            Err(e) => ("Err", e.to_string()),
        };
        match o.requests.len() {
            0 => write!(f, "   => {verdict} at once, no request sent: {value}"),
            1 => write!(
                f,
                "   => {verdict} after 1 attempt in {}: {value}",
                human(o.took)
            ),
            n => write!(
                f,
                "   => {verdict} after {n} attempts in {}: {value}",
                human(o.took)
            ),
        }
    }
}

// --- main ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    let demo = match Demo::start().await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    demo.introduce();
    let started = Instant::now();
    demo.run_all().await;
    println!(
        "\nAll scenarios ran in {}. What the runtime counted (retry_runtime::stats::snapshot()):\n",
        human(started.elapsed())
    );
    print!("{}", stats::snapshot());
    ExitCode::SUCCESS
}
