//! The sleeps between attempts, async and blocking; both skip when a test asked for no sleeping
//! (see [`testing`](crate::testing)).

use std::future::Future;
use std::mem::ManuallyDrop;
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
        timer: Option<Timer>,
    }
}

pin_project! {
    /// tokio's timer, dropped by a call that is not inlined.
    ///
    /// Why: a fn's future holds this sleep next to other values with a `Drop` (the statistics'
    /// recorder, a breaker's permit), and tokio's timer has a large drop of its own. Together they
    /// make the future's drop glue too big for LLVM to inline, so a call that completed at once
    /// still pays a call into that glue to find nothing to drop. Dropped out of line, the timer
    /// adds one call instruction to the glue instead.
    #[derive(Debug)]
    struct Timer {
        #[pin]
        inner: ManuallyDrop<tokio::time::Sleep>,
    }
    impl PinnedDrop for Timer {
        fn drop(this: Pin<&mut Self>) {
            drop_timer(this.project().inner);
        }
    }
}

#[inline(never)]
fn drop_timer(timer: Pin<&mut ManuallyDrop<tokio::time::Sleep>>) {
    // SAFETY: the timer is dropped in place, without being moved (as a pinned value must be),
    // and once: this runs only from `Timer`'s drop, and nothing touches `inner` after it.
    unsafe { ManuallyDrop::drop(timer.get_unchecked_mut()) }
}

/// Sleeps `delay` on tokio's timer (so a paused test clock skips it), unless sleeping is switched
/// off for the current thread. The switch is read here, when a retry is about to sleep, never on
/// the path of a call that succeeds.
pub fn sleep(delay: Duration) -> Sleep {
    let timer = if crate::testing::sleeping_disabled() {
        None
    } else {
        Some(Timer {
            inner: ManuallyDrop::new(tokio::time::sleep(delay)),
        })
    };
    Sleep { timer }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().timer.as_pin_mut() {
            Some(timer) => {
                // SAFETY: `ManuallyDrop` is a transparent wrapper; the timer inside is pinned
                // exactly as the wrapper is, and never moved out.
                let timer = unsafe { timer.project().inner.map_unchecked_mut(|t| &mut **t) };
                timer.poll(cx)
            }
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
