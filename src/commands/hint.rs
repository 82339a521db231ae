//! What an error needs a second look for, added before it is printed: a
//! bind that found its address in use names the processes holding it, and
//! a refused connect to this host says what listens here instead. `net`
//! reports the facts (the address taken, the addresses that refused); the
//! looking is `sockets`' (a netlink dump and a scan of `/proc`), a tool the
//! socket layer does not call.

use echokit::app::client::AppError;
use echokit::echo::client::ClientError;
use echokit::endpoint::SocketType;
use echokit::net::{BindError, ConnectError, Taken};
use echokit::sockets::{Kind, nearby};

/// Fills in the hint of the error at the top of `err` (a `BindError`, or a
/// `ConnectError` as itself or inside a client's error), if it has none yet.
pub(crate) fn add(mut err: anyhow::Error) -> anyhow::Error {
    if let Some(e) = err.downcast_mut::<BindError>() {
        name_holders(e);
    } else if let Some(e) = err.downcast_mut::<ConnectError>() {
        say_what_listens(e);
    } else if let Some(ClientError::Connect(e)) = err.downcast_mut::<ClientError>() {
        say_what_listens(e);
    } else if let Some(AppError::Connect(e)) = err.downcast_mut::<AppError>() {
        say_what_listens(e);
    }
    err
}

fn name_holders(err: &mut BindError) {
    if let BindError::InUse {
        taken,
        holders: holders @ None,
        ..
    } = err
    {
        *holders = Some(match taken {
            Taken::Port(ty, addr) => nearby::holders(kind(*ty), *addr),
            Taken::Unix(path) => nearby::unix_holders(path),
        });
    }
}

fn say_what_listens(err: &mut ConnectError) {
    if let ConnectError::Refused {
        tried,
        over,
        here: here @ None,
        ..
    } = err
    {
        *here = nearby::refused_here(kind(*over), tried);
    }
}

fn kind(ty: SocketType) -> Kind {
    match ty {
        SocketType::Stream => Kind::Tcp,
        SocketType::Datagram => Kind::Udp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echokit::exit::{Classify, ExitCode};
    use echokit::net::listen;

    #[test]
    fn a_second_bind_names_this_process_as_the_holder() {
        for scheme in ["tcp", "udp"] {
            let options = echokit::net::ListenOptions::default();
            let at = |s: &str| s.parse::<echokit::endpoint::Endpoint>().unwrap();
            let first = listen::bind(&at(&format!("{scheme}://127.0.0.1:0")), &options).unwrap();
            let again = at(&first[0].endpoint().to_string());
            let err = listen::bind(&again, &options).unwrap_err();
            let err = add(anyhow::Error::new(err).context("cannot start"));
            let Some(BindError::InUse { holders, .. }) = err.downcast_ref::<BindError>() else {
                panic!("expected InUse, got {err:?}");
            };
            let holders = holders.as_ref().expect("the hint looked");
            assert!(
                holders.iter().any(|h| h.pid == std::process::id()),
                "{scheme}: {holders:?}"
            );
            let in_use = err.downcast_ref::<BindError>().unwrap();
            assert_eq!(in_use.exit_code(), ExitCode::CannotBind);
            assert!(
                format!("{err:#}").contains(&format!(
                    "address in use: {scheme}://127.0.0.1:{} is already served by ",
                    first[0].local_addr().unwrap().port()
                )),
                "{err:#}"
            );
        }
    }

    #[test]
    fn a_refusal_elsewhere_keeps_the_plain_sentence() {
        let refused = ConnectError::Refused {
            target: "192.0.2.1:80".into(),
            tried: vec!["192.0.2.1:80".parse().unwrap()],
            over: SocketType::Stream,
            here: None,
        };
        let err = add(anyhow::Error::new(ClientError::Connect(refused)));
        assert_eq!(
            err.to_string(),
            "connection refused by 192.0.2.1:80: nothing is listening there: is the server \
             running, is the port right, is a firewall in the way?"
        );
    }
}
