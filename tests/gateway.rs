//! The Helicone-style gateway of `examples/gateway.rs`, driven over HTTP with reqwest against a
//! fake upstream: how many upstream attempts each combination of retry headers gets, and what
//! the client receives.
//!
//! Real sockets, so the real clock: delays are kept to a millisecond or two with
//! `helicone-retry-min-timeout`/`-max-timeout`, except where Helicone's own defaults are the
//! point (one 1 s backoff).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use retry_workspace::fake_provider::{FakeProvider, Recorded, Reply};
use serde_json::{json, Value};

#[path = "../examples/gateway.rs"]
#[allow(dead_code)] // `main` and its demo
mod gateway;

const KEY: &str = "sk-test";

/// Headers for retries with tiny delays (1..2 ms).
const FAST: [(&str, &str); 3] = [
    ("Helicone-Retry-Enabled", "true"),
    ("helicone-retry-min-timeout", "1"),
    ("helicone-retry-max-timeout", "2"),
];

struct Setup {
    upstream: FakeProvider,
    url: String,
    client: reqwest::Client,
}

/// A fake upstream and a gateway in front of it.
async fn setup(config: impl FnOnce(&mut gateway::GatewayConfig)) -> Setup {
    let upstream = FakeProvider::start(KEY).await.expect("upstream starts");
    let mut cfg = gateway::GatewayConfig::new(upstream.base_url());
    config(&mut cfg);
    let addr = gateway::serve(cfg).await.expect("gateway starts");
    Setup {
        upstream,
        url: format!("http://{addr}/v1/chat/completions"),
        client: reqwest::Client::new(),
    }
}

/// What the client got back, and the statuses of the upstream attempts behind it.
struct Exchange {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    upstream: Vec<u16>,
    requests: Vec<Recorded>,
    took: Duration,
}

impl Setup {
    async fn send(&self, key: &str, headers: &[(&str, &str)], script: Vec<Reply>) -> Exchange {
        self.upstream.script(script);
        self.upstream.clear_requests();
        let mut request = self.client.post(&self.url).bearer_auth(key).json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{ "role": "user", "content": "Hi" }],
        }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        let response = request.send().await.expect("the gateway answers");
        let took = started.elapsed();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.expect("a JSON body");
        let requests = self.upstream.take_requests();
        Exchange {
            status,
            headers,
            body,
            upstream: requests.iter().map(|r| r.status).collect(),
            requests,
            took,
        }
    }
}

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    [FAST.as_slice(), extra].concat()
}

fn content(body: &Value) -> &str {
    body.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test]
async fn without_retry_headers_one_attempt_and_the_upstream_error_passes_through() {
    let s = setup(|_| {}).await;
    let x = s.send(KEY, &[], vec![Reply::Unavailable; 3]).await;
    assert_eq!(
        (x.status, x.upstream),
        (StatusCode::SERVICE_UNAVAILABLE, vec![503])
    );
    assert_eq!(
        error_message(&x.body),
        "The server is overloaded or not ready yet."
    );

    // Disabled explicitly: the same, and the other headers are not even read.
    let headers = [
        ("Helicone-Retry-Enabled", "false"),
        ("helicone-retry-num", "not a number"),
    ];
    let x = s.send(KEY, &headers, vec![Reply::Unavailable; 3]).await;
    assert_eq!(
        (x.status, x.upstream),
        (StatusCode::SERVICE_UNAVAILABLE, vec![503])
    );
}

#[tokio::test]
async fn enabled_alone_uses_helicones_defaults_one_second_first_backoff() {
    let s = setup(|_| {}).await;
    let x = s
        .send(
            KEY,
            &[("Helicone-Retry-Enabled", "true")],
            vec![Reply::Unavailable],
        )
        .await;
    assert_eq!((x.status, x.upstream), (StatusCode::OK, vec![503, 200]));
    assert!(content(&x.body).starts_with("Hello"), "{}", x.body);
    // min-timeout 1000 ms, without jitter.
    assert!(x.took >= Duration::from_secs(1), "{:?}", x.took);
    assert!(x.took < Duration::from_millis(1800), "{:?}", x.took);

    // Four attempts in all (3 retries): seen with the delays scaled down.
    let x = s.send(KEY, &FAST, vec![Reply::Unavailable; 10]).await;
    assert_eq!(x.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(x.upstream, [503; 4]);
}

#[tokio::test]
async fn retry_num_sets_the_retries_after_the_first_attempt() {
    let s = setup(|_| {}).await;
    let x = s
        .send(
            KEY,
            &with(&[("helicone-retry-num", "1")]),
            vec![Reply::Unavailable; 10],
        )
        .await;
    assert_eq!(x.upstream, [503, 503]);
    assert_eq!(x.status, StatusCode::SERVICE_UNAVAILABLE);

    let x = s
        .send(
            KEY,
            &with(&[("helicone-retry-num", "5")]),
            vec![Reply::Unavailable; 10],
        )
        .await;
    assert_eq!(x.upstream, [503; 6]);

    // Success on the 4th attempt, within 5 retries: the client sees only the 200.
    let script = vec![
        Reply::Unavailable,
        Reply::Status(502),
        Reply::rate_limited_ms(1),
    ];
    let x = s
        .send(KEY, &with(&[("helicone-retry-num", "5")]), script)
        .await;
    assert_eq!(
        (x.status, x.upstream),
        (StatusCode::OK, vec![503, 502, 429, 200])
    );

    // `0`: retries enabled, none allowed.
    let x = s
        .send(
            KEY,
            &with(&[("helicone-retry-num", "0")]),
            vec![Reply::Unavailable; 10],
        )
        .await;
    assert_eq!(x.upstream, [503]);
}

#[tokio::test]
async fn the_gateway_caps_what_a_request_asks_for() {
    let s = setup(|c| c.max_attempts = 3).await;
    let x = s
        .send(
            KEY,
            &with(&[("helicone-retry-num", "1000")]),
            vec![Reply::Unavailable; 10],
        )
        .await;
    assert_eq!(x.upstream, [503; 3]);

    // max_time: a 1 s backoff would end past a 200 ms budget, so the first error is returned.
    let s = setup(|c| c.max_time = Duration::from_millis(200)).await;
    let x = s
        .send(
            KEY,
            &[("Helicone-Retry-Enabled", "true")],
            vec![Reply::Unavailable; 10],
        )
        .await;
    assert_eq!(x.upstream, [503]);
    assert!(
        x.took < Duration::from_millis(900),
        "no 1 s sleep: {:?}",
        x.took
    );
}

#[tokio::test]
async fn a_bad_header_value_is_a_400_naming_it_and_nothing_goes_upstream() {
    let s = setup(|_| {}).await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("helicone-retry-factor", "0.5")],
            r#"header helicone-retry-factor: "0.5": backoff_factor must be finite and at least 1.0, found 0.5"#,
        ),
        (
            &[("helicone-retry-num", "-1")],
            "header helicone-retry-num: \"-1\"",
        ),
        (
            &[("helicone-retry-max-timeout", "soon")],
            "header helicone-retry-max-timeout: \"soon\"",
        ),
        (
            &[("Helicone-Retry-Enabled", "yes")],
            "header helicone-retry-enabled: \"yes\"",
        ),
    ];
    for (extra, message) in cases {
        let mut headers = vec![("Helicone-Retry-Enabled", "true")];
        headers.retain(|(n, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(n)));
        headers.extend_from_slice(extra);
        let x = s.send(KEY, &headers, vec![]).await;
        assert_eq!(x.status, StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(
            error_message(&x.body).starts_with(message),
            "{extra:?}: {}",
            x.body
        );
        assert_eq!(
            x.body.pointer("/error/code").and_then(Value::as_str),
            Some("invalid_retry_header")
        );
        assert!(x.upstream.is_empty(), "{extra:?}: {:?}", x.upstream);
    }
}

#[tokio::test]
async fn a_non_retryable_upstream_error_passes_through_after_one_attempt() {
    let s = setup(|_| {}).await;
    let x = s
        .send("sk-wrong", &with(&[("helicone-retry-num", "5")]), vec![])
        .await;
    assert_eq!(
        (x.status, x.upstream),
        (StatusCode::UNAUTHORIZED, vec![401])
    );
    assert_eq!(error_message(&x.body), "Incorrect API key provided.");

    let x = s
        .send(
            KEY,
            &with(&[("helicone-retry-num", "5")]),
            vec![Reply::Status(400)],
        )
        .await;
    assert_eq!((x.status, x.upstream), (StatusCode::BAD_REQUEST, vec![400]));
}

#[tokio::test]
async fn the_last_rate_limit_passes_through_with_its_retry_after() {
    let s = setup(|_| {}).await;
    let script = vec![Reply::rate_limited_ms(3); 5];
    let x = s
        .send(KEY, &with(&[("helicone-retry-num", "1")]), script)
        .await;
    assert_eq!(
        (x.status, x.upstream),
        (StatusCode::TOO_MANY_REQUESTS, vec![429, 429])
    );
    assert_eq!(
        x.headers
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    assert_eq!(
        x.body.pointer("/error/code").and_then(Value::as_str),
        Some("rate_limit_exceeded")
    );
}

#[tokio::test]
async fn the_upstream_gets_the_request_without_the_gateway_headers() {
    let s = setup(|_| {}).await;
    let x = s
        .send(
            KEY,
            &with(&[("Idempotency-Key", "req-42")]),
            vec![Reply::Unavailable],
        )
        .await;
    assert_eq!(x.upstream, [503, 200]);
    for r in &x.requests {
        assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"), "the body arrived");
        assert_eq!(r.idempotency_key.as_deref(), Some("req-42"));
        let own: Vec<_> = r
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("helicone-"))
            .collect();
        assert!(own.is_empty(), "forwarded upstream: {own:?}");
    }
}
