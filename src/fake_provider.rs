//! A local OpenAI-compatible provider that fails on a script: the demo's and the tests' stand-in
//! for a real LLM API. It serves `POST /v1/chat/completions` on 127.0.0.1 and records every
//! request it receives.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// What the provider answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// 200 with this completion text.
    Complete(String),
    /// 429 `rate_limit_exceeded`, with `Retry-After` (whole seconds) and `retry-after-ms` (as
    /// OpenAI and Azure send next to it) when given.
    RateLimited {
        /// The `Retry-After` header, in whole seconds.
        retry_after_secs: Option<u64>,
        /// The `retry-after-ms` header, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// 429 with code `insufficient_quota`: a billing problem, not a rate limit.
    InsufficientQuota,
    /// 503 `Service Unavailable`.
    Unavailable,
    /// Any status with an OpenAI-style error body.
    Status(u16),
    /// Waits this long, then answers 200 (a client with a shorter timeout gives up first).
    Slow(Duration, String),
}

impl Reply {
    /// 200 with `text`.
    pub fn complete(text: &str) -> Reply {
        Reply::Complete(text.to_owned())
    }

    /// 429 `rate_limit_exceeded` with `Retry-After: secs`.
    pub fn rate_limited_secs(secs: u64) -> Reply {
        Reply::RateLimited {
            retry_after_secs: Some(secs),
            retry_after_ms: None,
        }
    }

    /// 429 `rate_limit_exceeded` with `retry-after-ms: ms`.
    pub fn rate_limited_ms(ms: u64) -> Reply {
        Reply::RateLimited {
            retry_after_secs: None,
            retry_after_ms: Some(ms),
        }
    }

    /// Answers 200 with `text` after `delay`.
    pub fn slow(delay: Duration, text: &str) -> Reply {
        Reply::Slow(delay, text.to_owned())
    }
}

/// One request as the provider saw it, recorded when it arrives (so a request whose client gave
/// up before a slow answer is listed too).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When it arrived, on tokio's clock.
    pub at: Instant,
    /// The status answered (401 for a bad key, else the scripted reply's; 200 for a slow reply
    /// even if the client stopped waiting).
    pub status: u16,
    /// Whether the answer was delayed (`Reply::Slow`).
    pub slow: bool,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// The retry-count header the OpenAI SDKs send (`x-stainless-retry-count`, what
    /// `AttemptContext::headers` sends), or `x-retry-count`, if sent.
    pub retry_count: Option<String>,
    /// The `model` of the request body.
    pub model: Option<String>,
    /// Every request header.
    pub headers: HeaderMap,
}

#[derive(Default)]
struct Shared {
    api_key: String,
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
}

/// A running fake provider; it stops when the runtime that started it shuts down.
#[derive(Clone)]
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl FakeProvider {
    /// Starts a provider on an ephemeral 127.0.0.1 port that accepts `Bearer {api_key}`.
    pub async fn start(api_key: &str) -> std::io::Result<FakeProvider> {
        let shared = Arc::new(Mutex::new(Shared {
            api_key: api_key.to_owned(),
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeProvider { addr, shared })
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client takes.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the script: the next requests get these replies in order; once it runs out,
    /// every request succeeds.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut shared = lock(&self.shared);
        shared.script = replies.into_iter().collect();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.shared).requests.clear();
    }

    /// The requests received since the last `take_requests` or `clear_requests`, forgetting
    /// them: what one scenario of a test or demo sent.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut lock(&self.shared).requests)
    }
}

async fn complete(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let model = body
        .as_ref()
        .and_then(|Json(b)| b.get("model"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (response, delay) = {
        let mut shared = lock(&shared);
        let authorised = header("authorization").as_deref()
            == Some(format!("Bearer {}", shared.api_key).as_str());
        // A bad key does not consume the script: the provider rejects it before any work.
        let (response, delay) = if authorised {
            let reply = shared.script.pop_front();
            respond(reply.unwrap_or_else(|| Reply::complete("Hello! How can I assist you today?")))
        } else {
            let response = error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect API key provided.",
            );
            (response, None)
        };
        shared.requests.push(Recorded {
            at: Instant::now(),
            status: response.status().as_u16(),
            slow: delay.is_some(),
            idempotency_key: header("idempotency-key"),
            retry_count: header("x-stainless-retry-count").or_else(|| header("x-retry-count")),
            model,
            headers: headers.clone(),
        });
        (response, delay)
    };
    // A client that stops waiting drops the connection, and with it this future.
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// The response to a scripted reply, and how long to hold it back.
fn respond(reply: Reply) -> (Response, Option<Duration>) {
    match reply {
        Reply::Complete(text) => (completion(&text), None),
        Reply::Slow(delay, text) => (completion(&text), Some(delay)),
        Reply::RateLimited {
            retry_after_secs,
            retry_after_ms,
        } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests.",
            );
            if let Some(secs) = retry_after_secs {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            if let Some(ms) = retry_after_ms {
                r.headers_mut()
                    .insert("retry-after-ms", HeaderValue::from(ms));
            }
            (r, None)
        }
        Reply::InsufficientQuota => (
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "insufficient_quota",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            None,
        ),
        Reply::Unavailable => (
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "service_unavailable",
                "The server is overloaded or not ready yet.",
            ),
            None,
        ),
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = if status.is_client_error() {
                "invalid_request_error"
            } else {
                "server_error"
            };
            let reason = status.canonical_reason().unwrap_or("Scripted failure");
            (error(status, kind, "scripted", &format!("{reason}.")), None)
        }
    }
}

/// The shared state, even if a panicking test thread poisoned the lock.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn completion(text: &str) -> Response {
    Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop"
        }]
    }))
    .into_response()
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "code": code } });
    (status, Json(body)).into_response()
}
