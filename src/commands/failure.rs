//! A command's failure: the error, with the context the command added, and
//! its exit code, fixed where the error was still typed.
//!
//! Every library error says its row of the exit-code table ([`Classify`]).
//! A `?` in a handler turns one into a [`Failure`] through that trait alone,
//! so an error type without a row does not compile, and `main` exits with
//! the code the failure carries instead of guessing it from the error's
//! type. An error from outside the library (a JSON writer's, a signal
//! handler's) gets its code where it happens, said out loud
//! ([`Context::fails_as`]).

use std::fmt::Display;

use echokit::exit::{Classify, ExitCode};

/// Why a command failed, and the code it exits with.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The row of the exit-code table.
    pub(crate) code: ExitCode,
    /// What went wrong, with its context (printed `{:#}`).
    pub(crate) error: anyhow::Error,
}

/// What a handler returns.
pub(crate) type Outcome<T> = Result<T, Failure>;

impl<E> From<E> for Failure
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Failure {
        Failure {
            code: e.exit_code(),
            error: anyhow::Error::new(e),
        }
    }
}

/// Context for a failure, as anyhow's `Context` adds it, keeping the code.
pub(crate) trait Context<T> {
    /// Says what was being done when it failed.
    fn context(self, what: impl Display + Send + Sync + 'static) -> Outcome<T>;

    /// The same, with the words made only on failure.
    fn with_context<D: Display + Send + Sync + 'static>(
        self,
        what: impl FnOnce() -> D,
    ) -> Outcome<T>;
}

impl<T, E: Into<Failure>> Context<T> for Result<T, E> {
    fn context(self, what: impl Display + Send + Sync + 'static) -> Outcome<T> {
        self.with_context(|| what)
    }

    fn with_context<D: Display + Send + Sync + 'static>(
        self,
        what: impl FnOnce() -> D,
    ) -> Outcome<T> {
        self.map_err(|e| {
            let Failure { code, error } = e.into();
            Failure {
                code,
                error: error.context(what()),
            }
        })
    }
}

/// For an error from outside the library: its code, said where it happens.
pub(crate) trait FailsAs<T> {
    /// Fails with `code`, saying what was being done.
    fn fails_as(self, code: ExitCode, what: impl Display + Send + Sync + 'static) -> Outcome<T>;
}

impl<T, E> FailsAs<T> for Result<T, E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn fails_as(self, code: ExitCode, what: impl Display + Send + Sync + 'static) -> Outcome<T> {
        self.map_err(|e| Failure {
            code,
            error: anyhow::Error::new(e).context(what),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echokit::net::ConnectError;

    #[test]
    fn context_keeps_the_code_of_the_error_under_it() {
        let refused: Result<(), ConnectError> = Err(ConnectError::TimedOut {
            target: "127.0.0.1:9".into(),
            after: std::time::Duration::from_secs(1),
        });
        let failure = refused.context("cannot start").unwrap_err();
        assert_eq!(failure.code, ExitCode::TimedOut);
        let text = format!("{:#}", failure.error);
        assert!(text.starts_with("cannot start: "), "{text}");
        let again: Outcome<()> = Err(failure);
        assert_eq!(again.context("more").unwrap_err().code, ExitCode::TimedOut);
    }

    #[test]
    fn a_system_error_fails_by_its_errno_and_an_outside_error_as_told() {
        let denied: Result<(), std::io::Error> =
            Err(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(
            denied.context("x").unwrap_err().code,
            ExitCode::PermissionDenied
        );
        let json: Result<serde_json::Value, _> = serde_json::from_str("{");
        let failure = json
            .fails_as(ExitCode::Failures, "cannot read")
            .unwrap_err();
        assert_eq!(failure.code, ExitCode::Failures);
    }
}
