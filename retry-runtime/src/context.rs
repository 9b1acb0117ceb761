//! What an attempt knows about its call: which attempt it is, how long the call has run, and an
//! idempotency key that is the same for every attempt of one call, so that a provider can tell a
//! retry from a new request (the `Idempotency-Key` header; the OpenAI and Anthropic SDKs also send
//! `x-stainless-retry-count`).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::CallState;

/// The `Idempotency-Key` header (Stripe's, and the IETF draft's, spelling).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The retry-count header the OpenAI and Anthropic SDKs send: `0` on the first attempt, `1` on
/// the first retry, and so on.
pub const RETRY_COUNT_HEADER: &str = "x-stainless-retry-count";

/// A random 128-bit key, drawn once per call and shared by its attempts. It prints as a version 4
/// UUID (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, lowercase).
///
/// ```
/// use retry_runtime::IdempotencyKey;
///
/// let key = IdempotencyKey::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
/// assert_eq!(key.to_str().as_str(), "01234567-89ab-4def-8123-456789abcdef");
/// assert_ne!(IdempotencyKey::random(), IdempotencyKey::random());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(u128);

impl IdempotencyKey {
    /// A fresh key from the thread's random generator. Does not allocate.
    pub fn random() -> Self {
        Self::from_u128(rand::random())
    }

    /// The key with these bits, the version and variant bits of a version 4 UUID set.
    pub const fn from_u128(bits: u128) -> Self {
        let bits = (bits & !(0xF << 76)) | (0x4 << 76);
        let bits = (bits & !(0x3 << 62)) | (0x2 << 62);
        IdempotencyKey(bits)
    }

    /// The key's bits.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The key as text, formatted on the stack.
    pub fn to_str(self) -> HeaderStr {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = HeaderStr::EMPTY;
        let mut len = 0;
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.buf[len] = b'-';
                len += 1;
            }
            let nibble = (self.0 >> (124 - 4 * i)) & 0xF;
            out.buf[len] = HEX[nibble as usize];
            len += 1;
        }
        out.len = len as u8;
        out
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.to_str().as_str())
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({self})")
    }
}

/// A header value formatted on the stack (at most 36 bytes of ASCII): pass
/// [`as_str`](Self::as_str) to an HTTP client.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderStr {
    buf: [u8; 36],
    len: u8,
}

impl HeaderStr {
    const EMPTY: HeaderStr = HeaderStr {
        buf: [0; 36],
        len: 0,
    };

    fn decimal(mut n: u32) -> HeaderStr {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut out = HeaderStr::EMPTY;
        let len = digits.len() - i;
        out.buf[..len].copy_from_slice(&digits[i..]);
        out.len = len as u8;
        out
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, hex and '-' are ever written.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for HeaderStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for HeaderStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for HeaderStr {
    fn as_ref(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl fmt::Display for HeaderStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for HeaderStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// What the body of a `#[retry_on_failure(context = ctx)]` fn sees as `ctx` on each attempt.
///
/// ```
/// use retry_runtime::{AttemptContext, IdempotencyKey};
/// use tokio::time::Instant;
///
/// let key = IdempotencyKey::from_u128(7);
/// let ctx = AttemptContext::new(2, Instant::now(), key);
/// assert_eq!((ctx.attempt(), ctx.retry_count(), ctx.is_retry()), (2, 1, true));
/// let [(k1, v1), (k2, v2)] = ctx.headers();
/// assert_eq!((k1, v1.as_str()), ("Idempotency-Key", "00000000-0000-4000-8000-000000000007"));
/// assert_eq!((k2, v2.as_str()), ("x-stainless-retry-count", "1"));
/// // e.g. with reqwest: for (name, value) in ctx.headers() { req = req.header(name, &*value) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptContext {
    attempt: u32,
    started: Instant,
    key: IdempotencyKey,
}

impl AttemptContext {
    /// The context of attempt `attempt` (1-based) of a call that started at `started`, keyed
    /// `key`.
    pub const fn new(attempt: u32, started: Instant, key: IdempotencyKey) -> Self {
        AttemptContext {
            attempt,
            started,
            key,
        }
    }

    /// This attempt's number: 1 for the first.
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Retries before this attempt: 0 for the first.
    pub const fn retry_count(&self) -> u32 {
        self.attempt.saturating_sub(1)
    }

    /// Whether an earlier attempt of this call failed.
    pub const fn is_retry(&self) -> bool {
        self.attempt > 1
    }

    /// Time since the call started, sleeps included. Reads the clock when asked, so an attempt
    /// that does not ask does not pay for it.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// When the call started.
    pub const fn started(&self) -> Instant {
        self.started
    }

    /// The call's key: the same on every attempt, different for every call.
    pub const fn idempotency_key(&self) -> IdempotencyKey {
        self.key
    }

    /// `("Idempotency-Key", key)`.
    pub fn idempotency_key_header(&self) -> (&'static str, HeaderStr) {
        (IDEMPOTENCY_KEY_HEADER, self.key.to_str())
    }

    /// `("x-stainless-retry-count", retries so far)`.
    pub fn retry_count_header(&self) -> (&'static str, HeaderStr) {
        (RETRY_COUNT_HEADER, HeaderStr::decimal(self.retry_count()))
    }

    /// Both headers, idempotency key first.
    pub fn headers(&self) -> [(&'static str, HeaderStr); 2] {
        [self.idempotency_key_header(), self.retry_count_header()]
    }
}

/// The per-call state behind [`AttemptContext`]: the key, drawn when the call starts. The
/// expansion creates it only for a fn with `context = ..`, so other fns pay nothing for it.
///
/// ```
/// use retry_runtime::{CallState, ContextState};
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let call = CallState::<Instant>::new();
/// let state = ContextState::new();
/// let ctx = state.attempt(&call);
/// assert_eq!(ctx.attempt(), 1);
/// assert_eq!(ctx.idempotency_key(), state.key());
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextState {
    key: IdempotencyKey,
}

impl Default for ContextState {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextState {
    /// State for a new call, with a fresh random key.
    pub fn new() -> Self {
        Self::with_key(IdempotencyKey::random())
    }

    /// State for a new call with a key of the caller's (a request id it already has).
    pub const fn with_key(key: IdempotencyKey) -> Self {
        ContextState { key }
    }

    /// The call's key.
    pub const fn key(&self) -> IdempotencyKey {
        self.key
    }

    /// The context of the attempt `call` is about to run. The elapsed time is measured from the
    /// call's start, which is why the call must record it (`CallState<Instant>`).
    #[inline]
    pub fn attempt(&self, call: &CallState<Instant>) -> AttemptContext {
        AttemptContext::new(call.attempt(), call.clock(), self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_as_version_4_uuids() {
        for _ in 0..100 {
            let key = IdempotencyKey::random();
            let text = key.to_str();
            let s = text.as_str();
            assert_eq!(s.len(), 36);
            let dashes: Vec<usize> = s.match_indices('-').map(|(i, _)| i).collect();
            assert_eq!(dashes, [8, 13, 18, 23]);
            assert_eq!(&s[14..15], "4");
            assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "{s}");
            assert!(s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
            assert_eq!(key.to_string(), s);
            assert_eq!(IdempotencyKey::from_u128(key.as_u128()), key);
        }
    }

    #[test]
    fn the_extremes_format() {
        assert_eq!(
            IdempotencyKey::from_u128(u128::MAX).to_str().as_str(),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            IdempotencyKey::from_u128(0).to_str().as_str(),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn retry_counts_format_in_decimal() {
        for (n, s) in [(0, "0"), (9, "9"), (10, "10"), (u32::MAX, "4294967295")] {
            assert_eq!(HeaderStr::decimal(n).as_str(), s);
        }
        let ctx = AttemptContext::new(0, Instant::now(), IdempotencyKey::from_u128(0));
        assert_eq!(ctx.retry_count(), 0, "attempt 0 does not underflow");
    }
}
