//! An OpenAI-style gateway that retries upstream calls with a per-request policy, as Helicone's
//! does: `cargo run --example gateway`.
//!
//! A client opts in per request with headers; the gateway reads them with
//! `RetryPolicy::from_headers(&headers, "helicone-")` and hands the policy to the attribute's
//! `config = ..` key:
//!
//! | request headers | upstream attempts |
//! |---|---|
//! | none, or `Helicone-Retry-Enabled: false` | 1 (the other headers are not read) |
//! | `Helicone-Retry-Enabled: true` | up to 4; 1 s, 2 s, 4 s apart (Helicone's defaults, no jitter) |
//! | `+ helicone-retry-num: N` | up to N + 1 |
//! | `+ helicone-retry-factor`, `-min-timeout`, `-max-timeout` (ms) | the backoff's factor, first and largest delay |
//! | a value that cannot be used (`helicone-retry-factor: 0.5`) | none: 400, naming the header |
//!
//! Upstream answers are classified by the runtime's HTTP table (408, 429 and 5xx are retried,
//! an upstream `Retry-After` is honoured); the last upstream answer, error or not, is passed
//! through to the client with its status. The request chooses how many attempts it gets, so the
//! gateway caps them (`GatewayConfig::max_attempts`) and bounds each request's retrying
//! (`GatewayConfig::max_time`).
//!
//! `tests/gateway.rs` drives this gateway with reqwest and counts the upstream attempts.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use retry_runtime::{
    retry_on_failure, Classification, PolicyError, RetryEvent, RetryPolicy, Retryable,
};
use retry_workspace::fake_provider::{FakeProvider, Reply};
use serde_json::json;
use tokio::net::TcpListener;

/// Where the gateway forwards to, and the limits it puts on what requests ask for.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The upstream's base URL, `http://host:port/v1`.
    pub upstream: String,
    /// The most attempts a request may ask for (`helicone-retry-num` + 1 above it is lowered).
    pub max_attempts: u32,
    /// The longest a request may spend retrying: no backoff sleep starts that would end later.
    pub max_time: Duration,
    /// Print each upstream retry (the demo does; the tests do not need to).
    pub log_retries: bool,
}

impl GatewayConfig {
    /// Forwards to `upstream`, at most 6 attempts per request, at most 60 s of retrying.
    pub fn new(upstream: String) -> Self {
        GatewayConfig {
            upstream,
            max_attempts: 6,
            max_time: Duration::from_secs(60),
            log_retries: false,
        }
    }
}

/// The gateway's shared state.
pub struct Gateway {
    config: GatewayConfig,
    http: reqwest::Client,
}

/// An upstream answer: its status, the headers worth passing on, and its body.
pub struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl IntoResponse for Upstream {
    fn into_response(self) -> Response {
        (self.status, self.headers, self.body).into_response()
    }
}

/// Why one upstream attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered with an error status; passed through if it is the last.
    #[error("upstream answered {}", .answer.status)]
    Status {
        /// The answer, as the client will get it.
        answer: Box<UpstreamAnswer>,
        /// By the HTTP table, with the upstream's `Retry-After`.
        class: Classification,
    },
    /// The upstream could not be reached, or its answer not read.
    #[error("upstream unreachable: {0}")]
    Network(#[from] reqwest::Error),
}

/// An upstream error answer, kept whole to pass it through.
#[derive(Debug)]
pub struct UpstreamAnswer {
    /// Its status.
    pub status: StatusCode,
    /// The headers the client gets too.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Retryable for UpstreamError {
    fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Status { class, .. } => class.is_retryable(),
            UpstreamError::Network(e) => e.is_retryable(),
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { class, .. } => class.retry_after_hint(),
            UpstreamError::Network(_) => None,
        }
    }
    fn is_rate_limited(&self) -> bool {
        matches!(self, UpstreamError::Status { class, .. } if class.is_rate_limited())
    }
}

/// Response headers passed back to the client.
const PASSED_BACK: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    HeaderName::from_static("retry-after-ms"),
];

impl Gateway {
    /// A gateway forwarding to `config.upstream`.
    pub fn new(config: GatewayConfig) -> Result<Self, reqwest::Error> {
        Ok(Gateway {
            config,
            http: reqwest::Client::builder().build()?,
        })
    }

    /// The policy a request asked for, within the gateway's limits.
    pub fn policy_for(&self, headers: &HeaderMap) -> Result<RetryPolicy, PolicyError> {
        let asked = RetryPolicy::from_headers(headers, "helicone-")?;
        asked
            .to_builder()
            .max_attempts(asked.max_attempts().min(self.config.max_attempts))
            .max_time(self.config.max_time)
            .build()
    }

    /// One upstream call per attempt, with the request's own policy (`config = policy`).
    #[retry_on_failure(
        config = policy,
        name = "gateway.forward",
        on_retry = |err, event| self.log_retry(err, event),
    )]
    async fn forward(
        &self,
        policy: &RetryPolicy,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Upstream, UpstreamError> {
        let url = format!("{}/chat/completions", self.config.upstream);
        let response = self
            .http
            .post(url)
            .headers(forwarded(headers))
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        let mut kept = HeaderMap::new();
        for name in PASSED_BACK {
            if let Some(value) = response.headers().get(&name) {
                kept.insert(name, value.clone());
            }
        }
        let class = retry_runtime::http::classify(status, response.headers());
        let body = response.bytes().await?;
        if status.is_success() {
            return Ok(Upstream {
                status,
                headers: kept,
                body,
            });
        }
        let answer = UpstreamAnswer {
            status,
            headers: kept,
            body,
        };
        Err(UpstreamError::Status {
            answer: Box::new(answer),
            class,
        })
    }

    fn log_retry(&self, err: &UpstreamError, event: &RetryEvent) {
        if self.config.log_retries {
            let hint = match err.retry_after() {
                Some(hint) => format!(", as the upstream asked for {}ms", hint.as_millis()),
                None => String::new(),
            };
            println!(
                "   gateway: attempt {} failed ({err}); retrying in {}ms{hint}",
                event.attempt,
                event.delay.as_millis()
            );
        }
    }
}

/// The request headers sent upstream: all but the gateway's own (`helicone-*`) and those that
/// describe this hop rather than the request (the client sets `host` and `content-length`).
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let hop = [
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
    ];
    headers
        .iter()
        .filter(|(name, _)| !name.as_str().starts_with("helicone-") && !hop.contains(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// `POST /v1/chat/completions`.
async fn chat_completions(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let policy = match gateway.policy_for(&headers) {
        Ok(policy) => policy,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_retry_header",
                &e.to_string(),
            )
        }
    };
    match gateway.forward(&policy, &headers, &body).await {
        Ok(answer) => answer.into_response(),
        Err(UpstreamError::Status { answer, .. }) => {
            let UpstreamAnswer {
                status,
                headers,
                body,
            } = *answer;
            (status, headers, body).into_response()
        }
        Err(e @ UpstreamError::Network(_)) => error(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            &e.to_string(),
        ),
    }
}

/// An OpenAI-style error answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "gateway_error", "code": code } });
    (status, Json(body)).into_response()
}

/// The gateway's routes.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(Arc::new(gateway))
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// It could not listen on 127.0.0.1.
    #[error("could not listen on 127.0.0.1: {0}")]
    Listen(#[from] std::io::Error),
    /// reqwest could not build its client.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Starts the gateway on an ephemeral 127.0.0.1 port; returns its address. It runs until the
/// runtime shuts down.
pub async fn serve(config: GatewayConfig) -> Result<SocketAddr, StartError> {
    let app = router(Gateway::new(config)?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("gateway stopped: {e}");
        }
    });
    Ok(addr)
}

// --- the demo -----------------------------------------------------------------------------------

/// The upstream's key.
const KEY: &str = "sk-demo-key";

#[tokio::main]
async fn main() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One request of the demo: its retry headers, the upstream's script, the key it sends.
struct Case {
    title: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    script: Vec<Reply>,
    key: &'static str,
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = FakeProvider::start(KEY).await?;
    let mut config = GatewayConfig::new(upstream.base_url());
    config.log_retries = true;
    let gateway = serve(config).await?;
    let url = format!("http://{gateway}/v1/chat/completions");
    println!(
        "Upstream (a fake OpenAI-compatible provider): {}",
        upstream.base_url()
    );
    println!("Gateway: {url}");
    // The delays are scaled down with `helicone-retry-min-timeout` (Helicone's default is 1000 ms)
    // so that the demo runs in well under a second.
    let fast = [
        ("Helicone-Retry-Enabled", "true"),
        ("helicone-retry-min-timeout", "20"),
    ];
    let cases = [
        Case {
            title: "No retry headers: the upstream's 503 goes straight back",
            headers: vec![],
            script: vec![Reply::Unavailable],
            key: KEY,
        },
        Case {
            title: "Retries enabled: 503, then 429, then 200",
            headers: fast.to_vec(),
            script: vec![Reply::Unavailable, Reply::rate_limited_ms(50)],
            key: KEY,
        },
        Case {
            title: "helicone-retry-num: 1 against an upstream that keeps failing",
            headers: [fast.as_slice(), &[("helicone-retry-num", "1")]].concat(),
            script: vec![Reply::Unavailable; 3],
            key: KEY,
        },
        Case {
            title: "A bad header value: 400 naming it, nothing sent upstream",
            headers: [fast.as_slice(), &[("helicone-retry-factor", "0.5")]].concat(),
            script: vec![],
            key: KEY,
        },
        Case {
            title: "A bad key: the upstream's 401 is not retried",
            headers: fast.to_vec(),
            script: vec![],
            key: "sk-wrong-key",
        },
    ];
    let client = reqwest::Client::new();
    for Case {
        title,
        headers,
        script,
        key,
    } in cases
    {
        println!("\n{title}");
        let sent: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        if !sent.is_empty() {
            println!("   request headers: {}", sent.join(", "));
        }
        upstream.script(script);
        upstream.clear_requests();
        let mut request = client.post(&url).bearer_auth(key).json(
            &json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "Hi" }] }),
        );
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        let seen: Vec<String> = upstream
            .take_requests()
            .iter()
            .map(|r| r.status.to_string())
            .collect();
        let detail = body
            .pointer("/error/message")
            .or_else(|| body.pointer("/choices/0/message/content"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let attempts = if seen.is_empty() {
            "no upstream attempt".to_owned()
        } else {
            format!("upstream answered {}", seen.join(", "))
        };
        println!("   => {attempts}; the client got {status}: {detail}");
    }
    Ok(())
}
