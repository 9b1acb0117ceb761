//! HTTP responses: which statuses are worth another attempt, and the one-call classification of a
//! status plus its headers for a provider's own error type.
//!
//! | status | verdict | rate limited |
//! |---|---|---|
//! | 408 Request Timeout | retry | no |
//! | 429 Too Many Requests | retry | yes |
//! | 500, 502 Bad Gateway, 503 Service Unavailable, 504 Gateway Timeout, every other 5xx | retry | 503 with a `Retry-After` only |
//! | 400, 401, 403, 404, 422, every other 4xx | give up | no |
//! | 1xx, 2xx, 3xx | give up | no |
//! | anything outside 100–599 | give up | no |
//!
//! 1xx, 2xx and 3xx are not failures: a call that turns one into an error (a redirect it does not
//! follow, a 204 where it wanted a body) would get the same answer again, so it gives up.
//! A 503 that carries `Retry-After` is the server shedding load and saying when to come back,
//! which is what a rate limit is; a bare 503 may as well be a deploy or an outage, which a circuit
//! breaker, not a throttle, should learn from.
//!
//! The table is [`classify_status`], available without features; with the `http` feature,
//! `http::StatusCode` implements [`Retryable`](crate::Retryable) by it and `classify(status, headers)`
//! adds the `Retry-After` headers.
//!
//! # A provider's own error type
//!
//! An API may answer 429 for two different things: "slow down" (retry after a while) and "your
//! account is out of credit" (OpenAI's `insufficient_quota`: no retry will help). The status alone
//! cannot tell them apart; the body can. `classify`'s example shows a provider error that takes the
//! table and the `Retry-After` hint in one call and overrides what the table cannot know.

use crate::Classification;

/// The verdict of the table above for a status code, without headers: retry 408, 429 and 5xx,
/// give up on everything else; 429 is rate limited.
///
/// ```
/// use retry_runtime::http::classify_status;
///
/// assert!(classify_status(503).is_retryable());
/// assert!(classify_status(429).is_rate_limited());
/// assert!(!classify_status(401).is_retryable());
/// assert!(!classify_status(200).is_retryable());
/// ```
pub const fn classify_status(code: u16) -> Classification {
    match code {
        408 | 500..=599 => Classification::retry(),
        429 => Classification::retry().with_rate_limited(true),
        _ => Classification::give_up(),
    }
}

#[cfg(feature = "http")]
mod with_http {
    use std::time::{Duration, SystemTime};

    use ::http::{HeaderMap, StatusCode};

    use super::classify_status;
    use crate::{retry_after, Classification, Retryable};

    /// The table's verdict for `status`, with the server's `Retry-After` hint
    /// (`retry-after-ms`, `Retry-After` seconds or HTTP-date) when the status is retryable, and
    /// `rate_limited` for a 429 or a 503 with a hint. See the [module docs](crate::http).
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, StatusCode};
    /// use std::time::Duration;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
    ///
    /// let c = retry_runtime::http::classify(StatusCode::SERVICE_UNAVAILABLE, &headers);
    /// assert!(c.is_retryable() && c.is_rate_limited());
    /// assert_eq!(c.retry_after_hint(), Some(Duration::from_millis(1500)));
    ///
    /// // A hint on a status that is not retried is dropped.
    /// let c = retry_runtime::http::classify(StatusCode::BAD_REQUEST, &headers);
    /// assert_eq!(c, retry_runtime::Classification::give_up());
    /// ```
    ///
    /// A provider whose 429 may be a rate limit or a billing error (`insufficient_quota`)
    /// classifies once, when it builds its error, and overrides what the table cannot know:
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, StatusCode};
    /// use retry_runtime::{Classification, Retryable};
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct ApiError {
    ///     status: StatusCode,
    ///     code: Option<String>,
    ///     class: Classification,
    /// }
    ///
    /// impl ApiError {
    ///     fn from_response(status: StatusCode, headers: &HeaderMap, code: Option<String>) -> Self {
    ///         let class = match code.as_deref() {
    ///             // A billing error wearing a 429: not a rate limit, and not retryable.
    ///             Some("insufficient_quota") => Classification::give_up(),
    ///             _ => retry_runtime::http::classify(status, headers),
    ///         };
    ///         ApiError { status, code, class }
    ///     }
    /// }
    ///
    /// impl Retryable for ApiError {
    ///     fn is_retryable(&self) -> bool {
    ///         self.class.is_retryable()
    ///     }
    ///     fn retry_after(&self) -> Option<Duration> {
    ///         self.class.retry_after_hint()
    ///     }
    ///     fn is_rate_limited(&self) -> bool {
    ///         self.class.is_rate_limited()
    ///     }
    /// }
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("retry-after", HeaderValue::from_static("20"));
    ///
    /// let slow_down = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, Some("rate_limit_exceeded".into()));
    /// assert!(slow_down.is_retryable() && slow_down.is_rate_limited());
    /// assert_eq!(slow_down.retry_after(), Some(Duration::from_secs(20)));
    ///
    /// let no_credit = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, Some("insufficient_quota".into()));
    /// assert!(!no_credit.is_retryable() && !no_credit.is_rate_limited());
    /// ```
    pub fn classify(status: StatusCode, headers: &HeaderMap) -> Classification {
        classify_at(status, headers, SystemTime::now())
    }

    /// [`classify`] with a `Retry-After` HTTP-date measured from `now`.
    pub fn classify_at(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Classification {
        let class = classify_status(status.as_u16());
        if !class.is_retryable() {
            return class;
        }
        let hint = retry_after::from_headers_at(headers, now);
        let shedding = status == StatusCode::SERVICE_UNAVAILABLE && hint.is_some();
        class
            .with_retry_after(hint)
            .with_rate_limited(class.is_rate_limited() || shedding)
    }

    /// By the [table](crate::http): 408, 429 and 5xx retry; 429 is rate limited.
    impl Retryable for StatusCode {
        fn is_retryable(&self) -> bool {
            classify_status(self.as_u16()).is_retryable()
        }
        fn is_rate_limited(&self) -> bool {
            classify_status(self.as_u16()).is_rate_limited()
        }
        fn retry_after(&self) -> Option<Duration> {
            None
        }
    }
}

#[cfg(feature = "http")]
pub use with_http::{classify, classify_at};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_row_by_row() {
        for code in [408, 429, 500, 501, 502, 503, 504, 505, 507, 511, 599] {
            assert!(classify_status(code).is_retryable(), "{code}");
        }
        for code in [
            0,
            99,
            100,
            101,
            200,
            201,
            204,
            301,
            302,
            304,
            399,
            400,
            401,
            402,
            403,
            404,
            405,
            409,
            410,
            413,
            418,
            422,
            425,
            451,
            499,
            600,
            999,
            u16::MAX,
        ] {
            assert_eq!(classify_status(code), Classification::give_up(), "{code}");
        }
        for code in 100..=999 {
            assert_eq!(
                classify_status(code).is_rate_limited(),
                code == 429,
                "{code}"
            );
            assert_eq!(classify_status(code).retry_after_hint(), None);
        }
    }

    #[cfg(feature = "http")]
    #[test]
    fn status_and_headers_in_one_call() {
        use crate::Retryable;
        use ::http::{header::RETRY_AFTER, HeaderMap, HeaderValue, StatusCode};
        use std::time::{Duration, SystemTime};

        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        let mut hinted = HeaderMap::new();
        hinted.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let bare = HeaderMap::new();
        let ten = Some(Duration::from_secs(10));

        let c = classify_at(StatusCode::TOO_MANY_REQUESTS, &hinted, now);
        assert!(c.is_retryable() && c.is_rate_limited());
        assert_eq!(c.retry_after_hint(), ten);
        let c = classify_at(StatusCode::TOO_MANY_REQUESTS, &bare, now);
        assert!(c.is_retryable() && c.is_rate_limited());
        assert_eq!(c.retry_after_hint(), None);

        let c = classify_at(StatusCode::SERVICE_UNAVAILABLE, &hinted, now);
        assert!(c.is_retryable() && c.is_rate_limited());
        assert_eq!(c.retry_after_hint(), ten);
        let c = classify_at(StatusCode::SERVICE_UNAVAILABLE, &bare, now);
        assert!(c.is_retryable() && !c.is_rate_limited());

        let c = classify_at(StatusCode::BAD_GATEWAY, &hinted, now);
        assert!(c.is_retryable() && !c.is_rate_limited());
        assert_eq!(c.retry_after_hint(), ten);

        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
            StatusCode::MOVED_PERMANENTLY,
        ] {
            assert_eq!(classify_at(status, &hinted, now), Classification::give_up());
        }

        assert!(StatusCode::GATEWAY_TIMEOUT.is_retryable());
        assert!(StatusCode::TOO_MANY_REQUESTS.is_rate_limited());
        assert!(!StatusCode::UNPROCESSABLE_ENTITY.is_retryable());
    }
}
