//! The observer interface through which shared mechanisms and hooks see each call's outcome.

use crate::{GiveUpReason, RetryEvent};

/// Sees the outcome of each attempt of a call. Every method has a no-op default, and `()` observes
/// nothing, so a call without observers compiles to the bare retry loop.
///
/// Observers compose as tuples: `(a, b)` calls `a` then `b`.
pub trait Observer<E> {
    /// A call is starting its first attempt.
    #[inline(always)]
    fn on_start(&self) {}

    /// The call succeeded on attempt `attempts` (1-based).
    #[inline(always)]
    fn on_success(&self, attempts: u32) {
        let _ = attempts;
    }

    /// The call is about to sleep and retry after `err`. Returning `Err(reason)` vetoes the retry:
    /// the call gives up with `err` instead.
    #[inline(always)]
    fn on_retry(&self, err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        let _ = (err, event);
        Ok(())
    }

    /// The call gave up and returns `err`. `attempts` counts the attempts that ran: a call that a
    /// gate turned away before its first attempt reports 0.
    #[inline(always)]
    fn on_give_up(&self, err: &E, reason: GiveUpReason, attempts: u32) {
        let _ = (err, reason, attempts);
    }
}

impl<E> Observer<E> for () {}

impl<E, O: Observer<E> + ?Sized> Observer<E> for &O {
    #[inline(always)]
    fn on_start(&self) {
        (**self).on_start();
    }
    #[inline(always)]
    fn on_success(&self, attempts: u32) {
        (**self).on_success(attempts);
    }
    #[inline(always)]
    fn on_retry(&self, err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        (**self).on_retry(err, event)
    }
    #[inline(always)]
    fn on_give_up(&self, err: &E, reason: GiveUpReason, attempts: u32) {
        (**self).on_give_up(err, reason, attempts);
    }
}

macro_rules! tuple_observer {
    ($($name:ident)+) => {
        #[allow(non_snake_case)]
        impl<Err, $($name: Observer<Err>),+> Observer<Err> for ($($name,)+) {
            #[inline(always)]
            fn on_start(&self) {
                let ($($name,)+) = self;
                $($name.on_start();)+
            }
            #[inline(always)]
            fn on_success(&self, attempts: u32) {
                let ($($name,)+) = self;
                $($name.on_success(attempts);)+
            }
            #[inline(always)]
            fn on_retry(&self, err: &Err, event: &RetryEvent) -> Result<(), GiveUpReason> {
                let ($($name,)+) = self;
                $($name.on_retry(err, event)?;)+
                Ok(())
            }
            #[inline(always)]
            fn on_give_up(&self, err: &Err, reason: GiveUpReason, attempts: u32) {
                let ($($name,)+) = self;
                $($name.on_give_up(err, reason, attempts);)+
            }
        }
    };
}

tuple_observer!(A);
tuple_observer!(A B);
tuple_observer!(A B C);
tuple_observer!(A B C D);
tuple_observer!(A B C D F);
tuple_observer!(A B C D F G);
tuple_observer!(A B C D F G H);
tuple_observer!(A B C D F G H I);
