//! `Retryable` for the errors of the standard library and tokio: `io::Error` by its kind, and
//! tokio's timeout.

use std::io::{self, ErrorKind};

use crate::Retryable;

/// By kind: a failure of the connection or of timing is retried; a failure that the same request
/// would meet again is not.
///
/// | retry | give up |
/// |---|---|
/// | `TimedOut`, `WouldBlock`, `Interrupted` | `NotFound`, `PermissionDenied`, `AlreadyExists` |
/// | `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `NotConnected` | `InvalidInput`, `InvalidData`, `Unsupported` |
/// | `BrokenPipe`, `UnexpectedEof`, `WriteZero` | `OutOfMemory`, `StorageFull`, `FileTooLarge`, `QuotaExceeded` |
/// | `HostUnreachable`, `NetworkUnreachable`, `NetworkDown` | `NotADirectory`, `IsADirectory`, `DirectoryNotEmpty` |
/// | `AddrInUse`, `AddrNotAvailable` (a client out of ephemeral ports) | `ReadOnlyFilesystem`, `StaleNetworkFileHandle`, `CrossesDevices` |
/// | `ResourceBusy`, `Deadlock` | `TooManyLinks`, `ArgumentListTooLong`, `NotSeekable`, `ExecutableFileBusy` |
/// | `Other`, and any kind not listed here (new kinds included) | |
///
/// An unknown kind is retried, as an error type without a `Retryable` impl is: the attempts are
/// bounded, a wrongly failed call is not. (`InvalidFilename`, stable only since Rust 1.87, above
/// this crate's 1.85, is among the unknown.)
///
/// ```
/// use retry_runtime::Retryable;
/// use std::io::{Error, ErrorKind};
///
/// assert!(Error::from(ErrorKind::ConnectionReset).is_retryable());
/// assert!(!Error::from(ErrorKind::PermissionDenied).is_retryable());
/// assert!(ErrorKind::TimedOut.is_retryable());
/// ```
impl Retryable for ErrorKind {
    fn is_retryable(&self) -> bool {
        use ErrorKind::*;
        !matches!(
            self,
            NotFound
                | PermissionDenied
                | AlreadyExists
                | InvalidInput
                | InvalidData
                | Unsupported
                | OutOfMemory
                | StorageFull
                | FileTooLarge
                | QuotaExceeded
                | NotADirectory
                | IsADirectory
                | DirectoryNotEmpty
                | ReadOnlyFilesystem
                | StaleNetworkFileHandle
                | CrossesDevices
                | TooManyLinks
                | ArgumentListTooLong
                | NotSeekable
                | ExecutableFileBusy
        )
    }
}

/// By [`ErrorKind`]: see its table.
impl Retryable for io::Error {
    fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// A `tokio::time::timeout` that ran out: another attempt may be faster.
impl Retryable for tokio::time::error::Elapsed {
    fn is_retryable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn io_kinds() {
        use ErrorKind::*;
        for kind in [
            TimedOut,
            WouldBlock,
            Interrupted,
            ConnectionRefused,
            ConnectionReset,
            ConnectionAborted,
            NotConnected,
            BrokenPipe,
            UnexpectedEof,
            WriteZero,
            HostUnreachable,
            NetworkUnreachable,
            NetworkDown,
            AddrInUse,
            AddrNotAvailable,
            ResourceBusy,
            Deadlock,
            Other,
        ] {
            assert!(kind.is_retryable(), "{kind:?}");
            assert!(io::Error::from(kind).is_retryable(), "{kind:?}");
            assert_eq!(io::Error::from(kind).retry_after(), None);
        }
        for kind in [
            NotFound,
            PermissionDenied,
            AlreadyExists,
            InvalidInput,
            InvalidData,
            Unsupported,
            OutOfMemory,
            StorageFull,
            QuotaExceeded,
            ReadOnlyFilesystem,
        ] {
            assert!(!kind.is_retryable(), "{kind:?}");
            assert!(!io::Error::new(kind, "detail").is_retryable(), "{kind:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn elapsed_is_retried() {
        let never = std::future::pending::<()>();
        let err = tokio::time::timeout(Duration::from_secs(1), never)
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert!(!err.is_rate_limited());
    }
}
