//! Before a run: will this machine's limits let it open what it asks for?
//! A run that dies halfway on `EMFILE` or `EADDRNOTAVAIL` measures the
//! client, not the server; this says what to change instead.
//!
//! [`assess`] is pure (tested on made-up limits); [`check`] reads the real
//! ones and raises the descriptor limit first when the hard limit allows.

use super::{BenchConfig, BenchError};

/// Descriptors kept for everything that is not a connection (epoll, wakers,
/// stdio, the report file).
const SPARE_FDS: u64 = 64;

/// What a run needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Sockets open at once.
    pub sockets: u64,
    /// Whether each socket takes a local port (TCP and UDP; not Unix).
    pub ports: bool,
    /// Distinct local addresses the sockets are spread over.
    pub sources: u64,
    /// Connections closed and reopened (TIME_WAIT on this side).
    pub churn: bool,
    /// The server is on loopback, where Linux reuses TIME_WAIT ports
    /// (`net.ipv4.tcp_tw_reuse` is 2 by default: loopback only).
    pub loopback: bool,
}

/// What the machine allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allows {
    /// Open descriptors: soft and hard limit.
    pub fds: (u64, u64),
    /// The ephemeral port range, if known.
    pub ports: Option<(u16, u16)>,
}

/// `Err` with what to change when the run cannot work; otherwise warnings.
pub fn assess(needs: Needs, allows: Allows) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let want = needs.sockets + SPARE_FDS;
    let (soft, hard) = allows.fds;
    if want > soft {
        let how = if want <= hard {
            format!("run `ulimit -n {want}` in this shell first")
        } else {
            format!(
                "the hard limit is {hard}: as root, raise it (`ulimit -Hn {want}`, or \
                 `nofile` in /etc/security/limits.conf) and then `ulimit -n {want}`"
            )
        };
        return Err(format!(
            "{} sockets need about {want} file descriptors, but this process may open {soft} \
             (ulimit -n): {how}, or use fewer connections",
            needs.sockets
        ));
    }
    if needs.ports
        && let Some((lo, hi)) = allows.ports
    {
        let per_source = u64::from(hi - lo) + 1;
        let room = per_source * needs.sources.max(1);
        if needs.sockets > room {
            return Err(format!(
                "{} connections need {} local ports, but the ephemeral range {lo}-{hi} \
                 (net.ipv4.ip_local_port_range) gives {per_source} per source address and {} \
                 source address(es) are used: spread the connections over more source \
                 addresses (--bind 127.0.0.1,127.0.0.2,... or --bind 127.0.0.1-127.0.0.8, on \
                 loopback), or widen the range (`sysctl -w \
                 net.ipv4.ip_local_port_range=\"1024 65535\"` as root)",
                needs.sockets,
                needs.sockets,
                needs.sources.max(1)
            ));
        }
        if needs.churn && !needs.loopback {
            warnings.push(format!(
                "churn: every connection this side closes waits in TIME_WAIT for 60 s and holds \
                 its port; {room} ports last about {room} connections per minute unless the \
                 kernel reuses them (net.ipv4.tcp_tw_reuse, on for loopback by default); \
                 addr_not_available errors mean the ports ran out"
            ));
        }
    }
    Ok(warnings)
}

/// Checks the real limits for `cfg`, raising the soft descriptor limit to
/// what is needed when the hard limit allows. Returns warnings to print.
pub fn check(cfg: &BenchConfig) -> Result<Vec<String>, BenchError> {
    let needs = Needs {
        // Each engine thread holds an epoll, a waker and a timer too.
        sockets: u64::from(cfg.connections) + 3 * u64::from(cfg.threads),
        ports: !cfg.target.is_local(),
        sources: cfg.bind.len() as u64,
        churn: cfg.churns(),
        loopback: cfg.target.ip().is_some_and(|a| a.ip().is_loopback()),
    };
    if let Some((soft, _)) = crate::os::fd_limits()
        && soft < needs.sockets + SPARE_FDS
    {
        // As the server does: the soft limit up to the hard one.
        crate::os::raise_fd_limit();
    }
    let allows = Allows {
        fds: crate::os::fd_limits().unwrap_or((u64::MAX, u64::MAX)),
        ports: crate::os::ephemeral_ports(),
    };
    assess(needs, allows).map_err(BenchError::Limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Allows = Allows {
        fds: (1_048_576, 1_048_576),
        ports: Some((32768, 60999)),
    };

    fn needs(sockets: u64) -> Needs {
        Needs {
            sockets,
            ports: true,
            sources: 1,
            churn: false,
            loopback: false,
        }
    }

    #[test]
    fn a_small_run_passes_quietly() {
        assert_eq!(assess(needs(50), ROOMY), Ok(vec![]));
    }

    #[test]
    fn too_few_descriptors_says_what_to_run() {
        let low = Allows {
            fds: (1024, 524_288),
            ..ROOMY
        };
        let err = assess(needs(10_000), low).unwrap_err();
        assert!(err.contains("ulimit -n 10064"), "{err}");
        let hard = Allows {
            fds: (1024, 4096),
            ..ROOMY
        };
        let err = assess(needs(10_000), hard).unwrap_err();
        assert!(err.contains("hard limit is 4096"), "{err}");
    }

    #[test]
    fn too_few_ports_suggests_bind_and_the_range() {
        let err = assess(needs(40_000), ROOMY).unwrap_err();
        assert!(err.contains("28232 per source address"), "{err}");
        assert!(err.contains("--bind"), "{err}");
        let spread = Needs {
            sources: 2,
            ..needs(40_000)
        };
        assert_eq!(assess(spread, ROOMY), Ok(vec![]));
        let unix = Needs {
            ports: false,
            ..needs(40_000)
        };
        assert_eq!(assess(unix, ROOMY), Ok(vec![]));
    }

    #[test]
    fn churn_warns_about_time_wait() {
        let churn = Needs {
            churn: true,
            ..needs(10)
        };
        let warnings = assess(churn, ROOMY).unwrap();
        assert!(warnings[0].contains("TIME_WAIT"));
    }
}
