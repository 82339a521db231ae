//! Dropping root once the sockets are bound (`--user NAME`), so that a
//! server on a privileged port (RFC 862's port 7) serves its clients as
//! nobody in particular.
//!
//! The order is the only safe one: the supplementary groups first
//! (`initgroups`: the user's own groups replace root's), then the group
//! (`setgid`), the user last (`setuid`), since once the user is no longer
//! root the groups cannot be changed. Then it checks that the drop held:
//! the real, effective and saved user and group ids are the user's, root's
//! group is not among the supplementary ones, and `setuid(0)` fails. As
//! root, glibc's `setuid` and `setgid` change every thread of the process,
//! not the calling one only.

use std::ffi::CString;
use std::io;

use nix::unistd::{self, Gid, Uid, User};

use crate::exit::{Classify, ExitCode};

/// Who the process runs as after [`drop_to`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The user's name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
}

/// Why the process could not become the user asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// No such user in the user database.
    #[error("no user named {name}: `getent passwd {name}` lists none")]
    UnknownUser {
        /// The name (or number) given.
        name: String,
    },
    /// Only root can become another user.
    #[error(
        "--user {name} needs root: this process runs as uid {uid}, which cannot change user; \
         start it as root (sudo) so that it binds, then drops to {name}, or leave out --user"
    )]
    NotRoot {
        /// The user asked for.
        name: String,
        /// Who the process is.
        uid: u32,
    },
    /// The user database could not be read.
    #[error("cannot look up user {name}")]
    Lookup {
        /// The user asked for.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// A step of the drop failed.
    #[error("cannot become user {name}: {step} failed")]
    Failed {
        /// The user asked for.
        name: String,
        /// The call that failed (`initgroups`, `setgid`, `setuid`).
        step: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
    /// The calls succeeded but the process could still be root again.
    #[error("dropping to user {name} did not hold: {what}")]
    NotDropped {
        /// The user asked for.
        name: String,
        /// What the check found.
        what: String,
    },
}

impl Classify for PrivilegeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PrivilegeError::UnknownUser { .. } | PrivilegeError::NotRoot { .. } => ExitCode::Usage,
            _ => ExitCode::Failures,
        }
    }
}

/// Looks up `name` (a user name, or a numeric uid that has an entry).
fn lookup(name: &str) -> Result<User, PrivilegeError> {
    let lookup_err = |e: nix::Error| PrivilegeError::Lookup {
        name: name.to_string(),
        source: e.into(),
    };
    if let Some(user) = User::from_name(name).map_err(lookup_err)? {
        return Ok(user);
    }
    if let Ok(uid) = name.parse::<u32>()
        && let Some(user) = User::from_uid(Uid::from_raw(uid)).map_err(lookup_err)?
    {
        return Ok(user);
    }
    Err(PrivilegeError::UnknownUser {
        name: name.to_string(),
    })
}

/// Becomes user `name` for good: its groups, its group, its uid; checked.
pub fn drop_to(name: &str) -> Result<Dropped, PrivilegeError> {
    let user = lookup(name)?;
    let euid = unistd::geteuid();
    if !euid.is_root() {
        return Err(PrivilegeError::NotRoot {
            name: name.to_string(),
            uid: euid.as_raw(),
        });
    }
    let failed = |step: &'static str| {
        move |e: nix::Error| PrivilegeError::Failed {
            name: name.to_string(),
            step,
            source: e.into(),
        }
    };
    let c_name = CString::new(user.name.as_bytes()).map_err(|_| PrivilegeError::UnknownUser {
        name: name.to_string(),
    })?;
    unistd::initgroups(&c_name, user.gid).map_err(failed("initgroups"))?;
    unistd::setgid(user.gid).map_err(failed("setgid"))?;
    unistd::setuid(user.uid).map_err(failed("setuid"))?;
    check(name, user.uid, user.gid)?;
    tracing::debug!(
        "now running as {} (uid {}, gid {})",
        user.name,
        user.uid,
        user.gid
    );
    Ok(Dropped {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

/// Checks that every id is the user's and that root cannot be had back.
fn check(name: &str, uid: Uid, gid: Gid) -> Result<(), PrivilegeError> {
    let not_dropped = |what: String| PrivilegeError::NotDropped {
        name: name.to_string(),
        what,
    };
    let ids = unistd::getresuid().map_err(|e| not_dropped(format!("getresuid: {e}")))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3] {
        return Err(not_dropped(format!(
            "user ids are {}/{}/{} (real/effective/saved)",
            ids.real, ids.effective, ids.saved
        )));
    }
    let gids = unistd::getresgid().map_err(|e| not_dropped(format!("getresgid: {e}")))?;
    if [gids.real, gids.effective, gids.saved] != [gid; 3] {
        return Err(not_dropped(format!(
            "group ids are {}/{}/{} (real/effective/saved)",
            gids.real, gids.effective, gids.saved
        )));
    }
    if uid.is_root() {
        // Asked to stay root: nothing to check further.
        return Ok(());
    }
    let groups = unistd::getgroups().map_err(|e| not_dropped(format!("getgroups: {e}")))?;
    if gid != Gid::from_raw(0) && groups.contains(&Gid::from_raw(0)) {
        return Err(not_dropped(
            "root's group is still a supplementary group".into(),
        ));
    }
    if unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(not_dropped("setuid(0) succeeded".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_user_is_a_usage_error_that_names_it() {
        let err = drop_to("no-such-user-echokit").unwrap_err();
        assert!(matches!(err, PrivilegeError::UnknownUser { .. }), "{err:?}");
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(err.to_string().contains("no-such-user-echokit"), "{err}");
    }

    #[test]
    fn a_numeric_uid_is_looked_up_too() {
        let root = lookup("0").unwrap();
        assert!(root.uid.is_root());
        assert_eq!(lookup("root").unwrap().uid, root.uid);
    }
}
