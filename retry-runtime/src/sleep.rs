//! The sleeps between attempts, async and blocking; both skip when a test asked for no sleeping
//! (see [`testing`](crate::testing)).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

pin_project! {
    /// The sleep between two attempts: tokio's timer, or nothing at all under
    /// [`testing::no_sleep`](crate::testing::no_sleep).
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Sleep {
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

/// Sleeps `delay` on tokio's timer (so a paused test clock skips it), unless sleeping is switched
/// off for the current thread. The switch is read here, when a retry is about to sleep, never on
/// the path of a call that succeeds.
pub fn sleep(delay: Duration) -> Sleep {
    let timer = if crate::testing::sleeping_disabled() {
        None
    } else {
        Some(tokio::time::sleep(delay))
    };
    Sleep { timer }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().timer.as_pin_mut() {
            Some(timer) => timer.poll(cx),
            None => Poll::Ready(()),
        }
    }
}

/// Blocks the thread for `delay`, unless sleeping is switched off for the current thread.
pub fn sleep_blocking(delay: Duration) {
    if !delay.is_zero() && !crate::testing::sleeping_disabled() {
        std::thread::sleep(delay);
    }
}
