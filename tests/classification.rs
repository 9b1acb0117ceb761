//! Which errors get another attempt, and when: the `Retryable` tables (io, HTTP), `Retry-After`
//! honoured exactly and never past `max_time` or `max_retry_after`, the provider whose 429
//! `insufficient_quota` is a billing error, and the source-chain matching that `retry_on` /
//! `give_up_on` use. Timing runs on tokio's paused clock, so every duration asserted is exact.

use std::error::Error;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::{header::RETRY_AFTER, HeaderMap, HeaderValue, StatusCode};
use retry_runtime::__private::{CallState, Instant};
use retry_runtime::{
    chain_has, retry_on_failure, Classification, GiveUpReason, Jitter, Observer, RetryEvent,
    RetryPolicy, Retryable,
};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// Records every decision of a call.
#[derive(Default)]
struct Log {
    retries: Mutex<Vec<Duration>>,
    gave_up: Mutex<Option<(GiveUpReason, u32)>>,
}

impl<E> Observer<E> for Log {
    fn on_retry(&self, _: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        self.retries.lock().unwrap().push(event.delay);
        Ok(())
    }
    fn on_give_up(&self, _: &E, reason: GiveUpReason, attempts: u32) {
        *self.gave_up.lock().unwrap() = Some((reason, attempts));
    }
}

fn policy() -> retry_runtime::RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(5)
        .initial_delay(MS(100))
        .jitter(Jitter::None)
}

/// One failed attempt through `CallState::step`: the sleep it asks for, or why it gave up.
fn step_once<C: retry_runtime::CallClock>(
    call: &mut CallState<C>,
    policy: &RetryPolicy,
    class: Classification,
) -> Result<Duration, GiveUpReason> {
    let log = Log::default();
    let result: Result<(), &str> = Err("failed");
    match call.step(policy, "t", result, |_| class, |_| false, |_| {}, &log) {
        ControlFlow::Continue(d) => Ok(d),
        ControlFlow::Break(r) => {
            assert_eq!(r, Err("failed"));
            Err(log.gave_up.lock().unwrap().expect("give-up observed").0)
        }
    }
}

// --- Retry-After through the state machine ---------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_hint_is_never_undercut_and_spread_by_at_most_a_tenth() {
    let policy = policy().build().unwrap();
    for secs in [1, 5, 30, 119] {
        let hint = S(secs);
        for _ in 0..50 {
            let mut call = CallState::<()>::new();
            let class = Classification::retry().with_retry_after(Some(hint));
            let d = step_once(&mut call, &policy, class).unwrap();
            assert!(d >= hint, "{d:?} < {hint:?}");
            assert!(d <= hint + (hint / 10).min(S(1)), "{d:?} for {hint:?}");
        }
    }
    // A hint below the backoff does not shorten it.
    let mut call = CallState::<()>::new();
    let class = Classification::retry().with_retry_after(Some(MS(10)));
    assert_eq!(step_once(&mut call, &policy, class), Ok(MS(100)));
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_gives_up_without_sleeping() {
    let policy = policy().max_time(S(10)).build().unwrap();
    let mut call = CallState::<Instant>::new();
    let started = Instant::now();
    let class = Classification::retry().with_retry_after(Some(S(11)));
    assert_eq!(
        step_once(&mut call, &policy, class),
        Err(GiveUpReason::Deadline)
    );
    assert_eq!(started.elapsed(), Duration::ZERO);

    // Within the deadline the same call sleeps at least the hint.
    let mut call = CallState::<Instant>::new();
    let class = Classification::retry().with_retry_after(Some(S(8)));
    assert!(step_once(&mut call, &policy, class).unwrap() >= S(8));
}

#[tokio::test(start_paused = true)]
async fn a_hint_above_max_retry_after_gives_up() {
    let capped = policy().max_retry_after(S(60)).build().unwrap();
    let give_up = |hint| {
        let mut call = CallState::<()>::new();
        step_once(
            &mut call,
            &capped,
            Classification::retry().with_retry_after(Some(hint)),
        )
    };
    assert!(give_up(S(60)).is_ok());
    assert_eq!(give_up(S(61)), Err(GiveUpReason::RetryAfterTooLong));
    assert_eq!(give_up(Duration::MAX), Err(GiveUpReason::RetryAfterTooLong));
    // The default cap is 120 s.
    let default = policy().build().unwrap();
    let mut call = CallState::<()>::new();
    let class = Classification::retry().with_retry_after(Some(S(121)));
    assert_eq!(
        step_once(&mut call, &default, class),
        Err(GiveUpReason::RetryAfterTooLong)
    );
}

#[tokio::test(start_paused = true)]
async fn hostile_retry_after_headers_never_sleep_unbounded() {
    let policy = policy().build().unwrap();
    let now = SystemTime::now();
    let verdict = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
        let class = retry_runtime::http::classify_at(StatusCode::TOO_MANY_REQUESTS, &headers, now);
        step_once(&mut CallState::<()>::new(), &policy, class)
    };
    // Garbage is no hint: the backoff decides.
    for v in [
        "-5",
        "NaN",
        "soon",
        "1e9",
        "inf",
        "Wed, 99 Oct 2015 07:28:00 GMT",
    ] {
        assert_eq!(verdict(v), Ok(MS(100)), "{v}");
    }
    // A date in the past is "now": the backoff decides.
    assert_eq!(verdict("Wed, 21 Oct 2015 07:28:00 GMT"), Ok(MS(100)));
    // Absurdly far is a give-up, not a sleep.
    for v in [
        "1000000000000000000000000000000",
        "18446744073709551616",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        assert_eq!(verdict(v), Err(GiveUpReason::RetryAfterTooLong), "{v}");
    }
}

// --- The attribute with `Retryable` errors ---------------------------------------------------

/// A provider's error as `http::classify` and the provider's body build it.
#[derive(Debug)]
struct ApiError {
    code: &'static str,
    class: Classification,
}

impl ApiError {
    fn new(status: StatusCode, headers: &HeaderMap, code: &'static str) -> Self {
        let class = match code {
            "insufficient_quota" => Classification::give_up(),
            _ => retry_runtime::http::classify(status, headers),
        };
        ApiError { code, class }
    }
}

impl Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
    fn retry_after(&self) -> Option<Duration> {
        self.class.retry_after_hint()
    }
    fn is_rate_limited(&self) -> bool {
        self.class.is_rate_limited()
    }
}

/// Attempt start times, relative to the first.
type Attempts = retry_workspace::attempt_log::AttemptLog;

fn headers(retry_after: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
    h
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0.1, jitter = "none")]
async fn openai(a: &Attempts, code: &'static str) -> Result<usize, ApiError> {
    let n = a.record();
    if n < 3 {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            &headers("2"),
            code,
        ));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn a_429_rate_limit_waits_for_retry_after_exactly() {
    let a = Attempts::new();
    assert_eq!(openai(&a, "rate_limit_exceeded").await.unwrap(), 3);
    let t = a.times();
    // Each gap is the 2 s hint plus a spread of at most 200 ms, never the 100/200 ms backoff.
    for gap in [t[1] - t[0], t[2] - t[1]] {
        assert!(gap >= S(2) && gap <= MS(2200), "{gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_insufficient_quota_is_returned_at_once() {
    let a = Attempts::new();
    let err = openai(&a, "insufficient_quota").await.unwrap_err();
    assert_eq!(err.code, "insufficient_quota");
    assert!(!err.is_rate_limited());
    assert_eq!(a.count(), 1);
    assert_eq!(a.start().elapsed(), Duration::ZERO);
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0.1, jitter = "none", max_time = 10)]
async fn far_hint(a: &Attempts, retry_after: &'static str) -> Result<(), ApiError> {
    a.record();
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        &headers(retry_after),
        "overloaded",
    ))
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_max_time_returns_the_error_without_sleeping() {
    let a = Attempts::new();
    let err = far_hint(&a, "30").await.unwrap_err();
    assert!(
        err.is_rate_limited(),
        "a 503 with Retry-After is load shedding"
    );
    assert_eq!(a.count(), 1);
    assert_eq!(a.start().elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_hint_above_the_default_cap_returns_the_error_without_sleeping() {
    let a = Attempts::new();
    // 121 s is within no deadline here but above the default max_retry_after of 120 s.
    far_hint(&a, "121").await.unwrap_err();
    assert_eq!(a.count(), 1);
    assert_eq!(a.start().elapsed(), Duration::ZERO);
}

#[retry_on_failure(
    max_attempts = 2,
    initial_delay = 0.1,
    jitter = "none",
    max_retry_after = 5
)]
async fn capped_hint(a: &Attempts, retry_after: &'static str) -> Result<(), ApiError> {
    a.record();
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        &headers(retry_after),
        "rate limited",
    ))
}

#[tokio::test(start_paused = true)]
async fn the_attributes_max_retry_after_caps_the_hints_it_honours() {
    // 6 s is above the fn's `max_retry_after = 5`: the error comes back at once.
    let a = Attempts::new();
    capped_hint(&a, "6").await.unwrap_err();
    assert_eq!((a.count(), a.start().elapsed()), (1, Duration::ZERO));
    // 5 s is honoured: the second attempt comes 5 s later, plus at most a tenth of a spread.
    let a = Attempts::new();
    capped_hint(&a, "5").await.unwrap_err();
    assert_eq!(a.count(), 2);
    let waited = a.start().elapsed();
    assert!(waited >= S(5) && waited <= MS(5500), "{waited:?}");
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0.1, jitter = "none")]
async fn status(a: &Attempts, s: StatusCode) -> Result<(), StatusCode> {
    a.record();
    Err(s)
}

#[tokio::test(start_paused = true)]
async fn the_http_table_row_by_row() {
    let retried = [408, 429, 500, 502, 503, 504, 501, 507, 599];
    let final_ = [
        400, 401, 403, 404, 409, 422, 451, 499, 100, 200, 204, 301, 304, 600,
    ];
    for (codes, attempts) in [(&retried[..], 3), (&final_[..], 1)] {
        for &code in codes {
            let a = Attempts::new();
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(status(&a, s).await, Err(s));
            assert_eq!(a.count(), attempts, "{code}");
        }
    }
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0.1, jitter = "none")]
async fn io(a: &Attempts, kind: std::io::ErrorKind) -> Result<(), std::io::Error> {
    a.record();
    Err(kind.into())
}

#[tokio::test(start_paused = true)]
async fn io_errors_by_kind() {
    use std::io::ErrorKind::*;
    for (kind, attempts) in [
        (TimedOut, 3),
        (ConnectionRefused, 3),
        (ConnectionReset, 3),
        (ConnectionAborted, 3),
        (BrokenPipe, 3),
        (UnexpectedEof, 3),
        (Interrupted, 3),
        (PermissionDenied, 1),
        (NotFound, 1),
        (InvalidInput, 1),
        (InvalidData, 1),
    ] {
        let a = Attempts::new();
        assert_eq!(io(&a, kind).await.unwrap_err().kind(), kind);
        assert_eq!(a.count(), attempts, "{kind:?}");
    }
}

#[retry_on_failure(max_attempts = 3, initial_delay = 0.1, jitter = "none")]
async fn slow(calls: &AtomicU32) -> Result<(), tokio::time::error::Elapsed> {
    calls.fetch_add(1, SeqCst);
    tokio::time::timeout(S(1), std::future::pending::<()>()).await
}

#[tokio::test(start_paused = true)]
async fn tokio_timeouts_are_retried() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    slow(&calls).await.unwrap_err();
    assert_eq!(calls.load(SeqCst), 3);
    // Three 1 s timeouts and the 100 ms + 200 ms backoff.
    assert_eq!(start.elapsed(), MS(3300));
}

// --- Source-chain matching, as `retry_on` / `give_up_on` will call it -------------------------

#[derive(Debug, thiserror::Error)]
#[error("rate limited")]
struct RateLimitError;

#[derive(Debug, thiserror::Error)]
#[error("timed out")]
struct TimeoutError;

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("request failed")]
    Request(#[from] RateLimitError),
    #[error("request timed out")]
    Timeout(#[source] TimeoutError),
}

#[derive(Debug, thiserror::Error)]
enum ProviderError {
    #[error("client error")]
    Client(#[from] ClientError),
    #[error(transparent)]
    Transparent(RateLimitError),
    #[error("bad key")]
    BadKey,
}

/// The call the expansion makes: `(&&&&Inspector(err)).__retry_inspect()`, then `chain_has` per
/// listed type.
macro_rules! lists_match {
    ($err:expr, $ty:ty) => {{
        #[allow(unused_imports)]
        use retry_runtime::__private::{
            InspectRequired as _, InspectViaAsRef as _, InspectViaError as _, InspectViaTrait as _,
        };
        let err = &$err;
        let dyn_err: &(dyn Error + 'static) =
            (&&&&retry_runtime::__private::Inspector(err)).__retry_inspect();
        chain_has::<$ty>(dyn_err)
    }};
}

#[test]
fn a_concrete_error_matches_through_two_layers() {
    let err = ProviderError::from(ClientError::from(RateLimitError));
    assert!(lists_match!(err, RateLimitError));
    assert!(lists_match!(err, ClientError));
    assert!(lists_match!(err, ProviderError));
    assert!(!lists_match!(err, TimeoutError));

    let err = ProviderError::from(ClientError::Timeout(TimeoutError));
    assert!(lists_match!(err, TimeoutError));
    assert!(!lists_match!(err, RateLimitError));
    assert!(!lists_match!(ProviderError::BadKey, RateLimitError));
}

#[test]
fn a_transparent_variant_hides_the_wrapped_error_from_the_chain() {
    // thiserror's `transparent` forwards `source()` to the wrapped error's own source, so the
    // wrapped `RateLimitError` is nowhere in the chain: `retry_on` cannot see it. The docs of
    // `retry_runtime::Inspect` show the fix, which the next test exercises.
    let err = ProviderError::Transparent(RateLimitError);
    assert!(err.source().is_none());
    assert!(!lists_match!(err, RateLimitError));
}

#[derive(Debug, thiserror::Error)]
enum Exposed {
    #[error(transparent)]
    RateLimited(#[from] RateLimitError),
}

impl retry_runtime::Inspect for Exposed {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        match self {
            Exposed::RateLimited(inner) => inner,
        }
    }
}

#[test]
fn an_inspect_impl_overrides_the_error_impl() {
    assert!(lists_match!(Exposed::from(RateLimitError), RateLimitError));
}

#[test]
fn boxed_errors_match() {
    let send_sync: Box<dyn Error + Send + Sync> = Box::new(ClientError::Timeout(TimeoutError));
    assert!(lists_match!(send_sync, TimeoutError));
    assert!(lists_match!(send_sync, ClientError));
    assert!(!lists_match!(send_sync, RateLimitError));

    let plain: Box<dyn Error> = Box::new(RateLimitError);
    assert!(lists_match!(plain, RateLimitError));
    let send: Box<dyn Error + Send> = Box::new(RateLimitError);
    assert!(lists_match!(send, RateLimitError));
    let shared: std::sync::Arc<dyn Error + Send + Sync> = std::sync::Arc::new(RateLimitError);
    assert!(lists_match!(shared, RateLimitError));
}

#[test]
fn anyhow_errors_match_through_context_layers() {
    let err = anyhow::Error::new(ClientError::from(RateLimitError))
        .context("calling the provider")
        .context("answering the user");
    assert!(lists_match!(err, RateLimitError));
    assert!(lists_match!(err, ClientError));
    assert!(!lists_match!(err, TimeoutError));

    // `.context` on a `Result` wraps the error the same way.
    let result: Result<(), TimeoutError> = Err(TimeoutError);
    let err = anyhow::Context::context(result, "step 2").unwrap_err();
    assert!(lists_match!(err, TimeoutError));

    assert!(!lists_match!(
        anyhow::anyhow!("plain message"),
        RateLimitError
    ));
}

#[test]
fn io_errors_are_matched_inside_their_payload() {
    let err = std::io::Error::other(ClientError::from(RateLimitError));
    assert!(lists_match!(err, ClientError));
    assert!(lists_match!(err, RateLimitError));
    assert!(lists_match!(err, std::io::Error));
}

#[test]
fn the_lists_are_applied_in_the_documented_order() {
    use retry_runtime::__private::decide;
    let hinted = || Classification::give_up().with_retry_after(Some(S(3)));
    let panics = || -> Classification { panic!("the error's own verdict was not needed") };
    // give_up_on wins over everything.
    assert_eq!(decide(true, Some(true), panics), Classification::give_up());
    // retry_on / retry_if decide over the trait, keeping the trait's hint.
    assert_eq!(
        decide(false, Some(false), panics),
        Classification::give_up()
    );
    assert_eq!(
        decide(false, Some(true), hinted),
        Classification::retry().with_retry_after(Some(S(3)))
    );
    // Without lists, the trait (or "retry everything") decides.
    assert_eq!(decide(false, None, hinted), hinted());
}

// --- reqwest, against a server on the loopback interface ---------------------------------------

mod reqwest_errors {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves at most `responses.len()` connections on 127.0.0.1, the n-th getting the n-th raw
    /// response (`None`: read the request and never answer). Returns the base URL and the count of
    /// requests served.
    async fn serve(responses: Vec<Option<&'static str>>) -> (String, std::sync::Arc<AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let served = std::sync::Arc::new(AtomicU32::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            for response in responses {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, SeqCst);
                match response {
                    Some(r) => {
                        let _ = socket.write_all(r.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    // Hold the connection open without answering, for a bounded time.
                    None => tokio::time::sleep(S(5)).await,
                }
            }
        });
        (url, served)
    }

    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const TOO_MANY: &str =
        "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const NOT_FOUND: &str =
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi";

    async fn status_error(response: &'static str) -> reqwest::Error {
        let (url, _) = serve(vec![Some(response)]).await;
        let resp = reqwest::get(&url).await.unwrap();
        resp.error_for_status().unwrap_err()
    }

    #[tokio::test]
    async fn statuses_follow_the_table() {
        let err = status_error(UNAVAILABLE).await;
        assert!(err.is_retryable() && !err.is_rate_limited());
        let err = status_error(TOO_MANY).await;
        assert!(err.is_retryable() && err.is_rate_limited());
        let err = status_error(NOT_FOUND).await;
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = reqwest::get(&url).await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn a_timeout_is_retried() {
        let (url, _) = serve(vec![None]).await;
        let client = reqwest::Client::builder().timeout(MS(50)).build().unwrap();
        let err = client.get(&url).send().await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn a_bad_url_and_a_redirect_loop_are_final() {
        let err = reqwest::get("http://exa mple.invalid/").await.unwrap_err();
        assert!(err.is_builder(), "{err:?}");
        assert!(!err.is_retryable());

        let redirect =
            "HTTP/1.1 302 Found\r\nlocation: /\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let (url, _) = serve(vec![Some(redirect); 12]).await;
        let err = reqwest::get(&url).await.unwrap_err();
        assert!(err.is_redirect(), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_body_that_cannot_be_parsed_is_final_one_cut_short_is_retried() {
        let (url, _) = serve(vec![Some(OK)]).await;
        let err = reqwest::get(&url)
            .await
            .unwrap()
            .json::<Vec<u32>>()
            .await
            .unwrap_err();
        assert!(err.is_decode(), "{err:?}");
        assert!(!err.is_retryable());

        let cut = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nonly part";
        let (url, _) = serve(vec![Some(cut)]).await;
        let err = reqwest::get(&url).await.unwrap().text().await.unwrap_err();
        // reqwest reports a body cut short as a decode error over hyper's: the transport failed.
        assert!(err.is_decode(), "{err:?}");
        assert!(err.is_retryable(), "{err:?}");
    }

    #[retry_on_failure(max_attempts = 4, initial_delay = 0.01, jitter = "none")]
    async fn fetch(url: &str) -> Result<String, reqwest::Error> {
        reqwest::get(url).await?.error_for_status()?.text().await
    }

    #[tokio::test]
    async fn the_attribute_retries_a_503_and_returns_a_404() {
        let (url, served) = serve(vec![Some(UNAVAILABLE), Some(UNAVAILABLE), Some(OK)]).await;
        assert_eq!(fetch(&url).await.unwrap(), "hi");
        assert_eq!(served.load(SeqCst), 3);

        let (url, served) = serve(vec![Some(NOT_FOUND), Some(OK)]).await;
        let err = fetch(&url).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(served.load(SeqCst), 1);
    }
}
