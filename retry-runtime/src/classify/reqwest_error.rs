//! `Retryable` for `reqwest::Error` (feature `reqwest`).

use std::io;

use crate::http::classify_status;
use crate::Retryable;

/// What reqwest reports, in this order:
///
/// | error | verdict |
/// |---|---|
/// | from `error_for_status` | by the [HTTP table](crate::http) (429 is rate limited) |
/// | a timeout (`is_timeout`), a failed connect (`is_connect`, DNS included) | retry |
/// | sending the request or reading the body failed (`is_request`, `is_body`) | retry |
/// | the body was read but could not be decoded (`is_decode` over a parse error) | give up |
/// | the body could not be read (`is_decode` over a hyper or I/O error: the connection dropped) | retry |
/// | a bad URL or header (`is_builder`), a redirect loop (`is_redirect`), a failed upgrade | give up |
/// | anything else | retry |
///
/// A `reqwest::Error` does not keep the response's headers, so it carries no `Retry-After`.
/// To honour one, classify the response before turning it into an error:
/// [`http::classify(resp.status(), resp.headers())`](crate::http::classify).
///
/// ```no_run
/// use retry_runtime::{retry_on_failure, Retryable};
///
/// #[retry_on_failure(max_attempts = 4)]
/// async fn fetch(client: &reqwest::Client) -> Result<String, reqwest::Error> {
///     // A 503 or a timeout is retried, a 404 is returned at once.
///     client.get("http://localhost:8080/").send().await?.error_for_status()?.text().await
/// }
/// ```
impl Retryable for reqwest::Error {
    fn is_retryable(&self) -> bool {
        if let Some(status) = self.status() {
            return classify_status(status.as_u16()).is_retryable();
        }
        if self.is_timeout() || self.is_connect() {
            return true;
        }
        if self.is_builder() || self.is_redirect() || self.is_upgrade() {
            return false;
        }
        if self.is_decode() {
            return transport_failed(self);
        }
        true
    }

    fn is_rate_limited(&self) -> bool {
        self.status()
            .is_some_and(|s| classify_status(s.as_u16()).is_rate_limited())
    }
}

/// Whether a decode error's cause is the transport (hyper, I/O, a nested body error) rather than
/// the bytes themselves (serde_json, an encoding).
fn transport_failed(err: &reqwest::Error) -> bool {
    crate::chain(err).skip(1).any(|e| {
        e.is::<hyper::Error>()
            || e.is::<io::Error>()
            || e.downcast_ref::<reqwest::Error>()
                .is_some_and(|inner| inner.is_body() || inner.is_timeout())
    })
}
