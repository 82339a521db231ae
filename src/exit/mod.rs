//! The exit codes of the whole tool: one table, the same failure with the same
//! code in every subcommand.
//!
//! Library errors say which row they belong to through [`Classify`]; the
//! binary turns an error into its failure through that trait alone, so an
//! error type without a row does not compile into a command. The table is
//! printed in `--help` and reproduced in the README (a test keeps them equal).
//! Codes 9 (a TLS or certificate failure) and 10 (a missed bench objective)
//! are kept for the work that will need them.

/// Why the process ended, as the number it exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything asked for was done.
    Success,
    /// The command ran, but found failures (an echo that differs, errors during a run).
    Failures,
    /// The command line was wrong (bad flag, bad endpoint).
    Usage,
    /// The peer refused the connection: nothing listens there.
    Refused,
    /// A connect or the exchange did not finish in time.
    TimedOut,
    /// The host is unreachable, or its name did not resolve.
    Unreachable,
    /// A local address could not be bound: in use, permission denied, not available.
    CannotBind,
    /// The peer broke the protocol: a malformed, truncated or reset reply.
    Protocol,
    /// The system denied the connection: a socket file's permissions, a
    /// firewall rule.
    PermissionDenied,
}

impl ExitCode {
    /// Every code, in numeric order.
    pub const ALL: [ExitCode; 9] = [
        ExitCode::Success,
        ExitCode::Failures,
        ExitCode::Usage,
        ExitCode::Refused,
        ExitCode::TimedOut,
        ExitCode::Unreachable,
        ExitCode::CannotBind,
        ExitCode::Protocol,
        ExitCode::PermissionDenied,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failures => 1,
            ExitCode::Usage => 2,
            ExitCode::Refused => 3,
            ExitCode::TimedOut => 4,
            ExitCode::Unreachable => 5,
            ExitCode::CannotBind => 6,
            ExitCode::Protocol => 7,
            ExitCode::PermissionDenied => 8,
        }
    }

    /// One line on what the code means, as `--help` and the README show it.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Failures => {
                "ran, but found failures (an echo that differs, errors during a run)"
            }
            ExitCode::Usage => "usage error (bad flag or endpoint)",
            ExitCode::Refused => "connection refused",
            ExitCode::TimedOut => "timed out",
            ExitCode::Unreachable => "host unreachable or name not resolved",
            ExitCode::CannotBind => {
                "cannot bind (address in use, permission denied, not available)"
            }
            ExitCode::Protocol => {
                "the peer broke the protocol (a malformed, truncated or reset reply)"
            }
            ExitCode::PermissionDenied => {
                "permission denied (a file's or socket file's permissions, a firewall rule)"
            }
        }
    }

    /// The code of a run made of parts (connections, cells): theirs when
    /// they all agree (all succeeded, or all failed the same way),
    /// otherwise "ran, but found failures". No parts is success.
    pub fn agreed(codes: impl IntoIterator<Item = ExitCode>) -> ExitCode {
        let mut codes = codes.into_iter();
        let Some(first) = codes.next() else {
            return ExitCode::Success;
        };
        if codes.all(|c| c == first) {
            first
        } else {
            ExitCode::Failures
        }
    }

    /// The table as `--help` prints it: `  N  meaning`, one row per code.
    pub fn help_table() -> String {
        let mut out = String::from("Exit codes (the same in every subcommand):\n");
        for code in ExitCode::ALL {
            out.push_str(&format!("  {}  {}\n", code.code(), code.meaning()));
        }
        out
    }
}

/// An error that knows which exit code it stands for.
pub trait Classify {
    /// The row of the exit-code table this error belongs to.
    fn exit_code(&self) -> ExitCode;
}

/// A bare system error, by its errno: the same failure as the typed errors
/// that carry it.
impl Classify for std::io::Error {
    fn exit_code(&self) -> ExitCode {
        match self.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => ExitCode::PermissionDenied,
            Some(libc::ECONNREFUSED) => ExitCode::Refused,
            Some(libc::ETIMEDOUT) => ExitCode::TimedOut,
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN) => {
                ExitCode::Unreachable
            }
            Some(libc::EADDRINUSE | libc::EADDRNOTAVAIL) => ExitCode::CannotBind,
            Some(libc::ECONNRESET | libc::EPIPE) => ExitCode::Protocol,
            _ => ExitCode::Failures,
        }
    }
}

#[cfg(test)]
mod every_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_that_agree_give_their_code_and_others_failures() {
        use ExitCode::*;
        assert_eq!(ExitCode::agreed([]), Success);
        assert_eq!(ExitCode::agreed([Success, Success]), Success);
        assert_eq!(ExitCode::agreed([Refused, Refused]), Refused);
        assert_eq!(ExitCode::agreed([Refused, Success]), Failures);
        assert_eq!(ExitCode::agreed([Refused, TimedOut]), Failures);
    }

    #[test]
    fn a_system_error_has_the_code_of_its_failure() {
        let code = |errno| std::io::Error::from_raw_os_error(errno).exit_code().code();
        assert_eq!(code(libc::EACCES), 8);
        assert_eq!(code(libc::ECONNREFUSED), 3);
        assert_eq!(code(libc::ETIMEDOUT), 4);
        assert_eq!(code(libc::ENETUNREACH), 5);
        assert_eq!(code(libc::EADDRINUSE), 6);
        assert_eq!(code(libc::ECONNRESET), 7);
        assert_eq!(code(libc::ENOSPC), 1);
    }

    #[test]
    fn codes_are_their_position_in_the_table() {
        for (i, code) in ExitCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(code.code()), i);
        }
    }
}
