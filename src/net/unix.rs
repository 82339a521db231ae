//! Unix-domain sockets: binding at a path or an abstract name, and the
//! socket file's life.
//!
//! A socket file is created with the permissions asked for (0600 by
//! default: only its owner may connect) from the start: the socket's own
//! inode gets the mode before `bind`, and Linux creates the file with it,
//! so there is no moment when a wider mode lets someone in. The umask can
//! only narrow that; `chmod` afterwards sets the mode exactly.
//!
//! A path already in use is one of three things, told apart before anything
//! is removed:
//! - a socket some server still answers on: "address in use", naming it;
//! - a socket file left by a server that died: a connect to it is refused,
//!   so it is stale, and is replaced (the only case where a file is removed);
//! - anything else (a regular file, a directory): never touched, an error.
//!
//! The file is removed when the listener closes, and only if the path still
//! names the socket this process created (same device and inode): a newer
//! server's socket at the same path is left alone. A socket file a service
//! manager created (socket activation) is never removed: it belongs to
//! the service manager.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::{Domain, SockAddr, Socket, Type};

use super::UNIX_DATAGRAM_MAX;
use super::listen::{BindError, ListenOptions, Taken};
use crate::calls;
use crate::endpoint::{Endpoint, LocalName, SocketType};

/// Permissions of a new socket file when no `--mode` is given: only the
/// owner may connect (connecting to a Unix socket needs write permission).
pub const DEFAULT_MODE: u32 = 0o600;

/// A socket file this process created, removed when dropped if the path
/// still names it; or one a service manager created (socket activation),
/// known by its identity and never removed.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Created by this process: removed when dropped.
    ours: bool,
}

impl SocketFile {
    /// Takes charge of the socket file just bound at `path`.
    fn at(path: PathBuf) -> io::Result<SocketFile> {
        let meta = std::fs::symlink_metadata(&path)?;
        Ok(SocketFile {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            ours: true,
        })
    }

    /// The file of a socket someone else bound at `path`: known, so that
    /// it can be told from other sockets, and left in place.
    pub(crate) fn inherited(path: PathBuf) -> io::Result<SocketFile> {
        let mut file = SocketFile::at(path)?;
        file.ours = false;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's device and inode: who it is, under any name.
    pub fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Whether `meta` describes this very file (the same device and inode),
    /// under whatever name.
    pub fn is(&self, meta: &std::fs::Metadata) -> bool {
        meta.dev() == self.dev && meta.ino() == self.ino
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if !self.ours {
            return;
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if self.is(&meta) => match std::fs::remove_file(&self.path) {
                Ok(()) => tracing::debug!("removed socket file {}", self.path.display()),
                Err(e) => {
                    tracing::warn!(
                        "cannot remove socket file {}: {}",
                        self.path.display(),
                        crate::text::os_error(&e)
                    );
                }
            },
            Ok(_) => tracing::debug!(
                "{} is no longer our socket file; left in place",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}

/// The socket address of a local name.
pub fn sock_addr(name: &LocalName) -> io::Result<SockAddr> {
    match name {
        LocalName::Path(path) => SockAddr::unix(path),
        LocalName::Abstract(name) => {
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name.as_bytes());
            SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
        }
    }
}

/// Binds a Unix socket (and listens, for a stream one). Returns the socket,
/// non-blocking, and the file to remove when it closes.
pub(crate) fn bind(
    endpoint: &Endpoint,
    opts: &ListenOptions,
) -> Result<(Socket, Option<SocketFile>), BindError> {
    let name = endpoint
        .local_name()
        .expect("unix::bind is called with Unix endpoints only");
    let ty = endpoint.socket_type();
    let other = |source| BindError::Other {
        at: endpoint.clone(),
        source,
    };
    let addr = sock_addr(name).map_err(other)?;
    let socket = calls::socket(Domain::UNIX, ty.socket2(), None).map_err(other)?;
    calls::nonblocking(&socket).map_err(other)?;
    if ty == SocketType::Datagram {
        room_for_largest_datagram(&socket).map_err(other)?;
        pass_credentials(&socket).map_err(other)?;
    }
    let file = match name {
        LocalName::Abstract(_) => {
            calls::bind(&socket, &addr).map_err(|e| in_use_or(endpoint, name, e))?;
            None
        }
        LocalName::Path(path) => Some(bind_path(&socket, &addr, path, endpoint, opts.mode)?),
    };
    if ty == SocketType::Stream {
        let backlog = i32::try_from(opts.backlog).unwrap_or(i32::MAX);
        calls::listen(&socket, backlog).map_err(other)?;
    }
    tracing::debug!("bound {endpoint}");
    Ok((socket, file))
}

fn bind_path(
    socket: &Socket,
    addr: &SockAddr,
    path: &Path,
    endpoint: &Endpoint,
    mode: u32,
) -> Result<SocketFile, BindError> {
    let other = |source| BindError::Other {
        at: endpoint.clone(),
        source,
    };
    // Linux creates the file with the socket inode's mode (less the umask).
    set_socket_mode(socket, mode).map_err(other)?;
    if let Err(e) = calls::bind(socket, addr) {
        let dir = || match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match e.raw_os_error() {
            Some(libc::EADDRINUSE) => {}
            Some(libc::ENOENT) => {
                return Err(BindError::NoDirectory {
                    at: endpoint.clone(),
                    dir: dir(),
                });
            }
            Some(libc::EACCES) => {
                return Err(BindError::DirectoryDenied {
                    at: endpoint.clone(),
                    dir: dir(),
                });
            }
            _ => return Err(other(e)),
        }
        replace_if_stale(path, addr, endpoint)?;
        calls::bind(socket, addr)
            .map_err(|e| in_use_or(endpoint, &LocalName::Path(path.into()), e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(other)?;
    SocketFile::at(path.to_path_buf()).map_err(other)
}

/// The send buffer a Unix datagram socket needs to send the largest datagram
/// echoed: Linux refuses a datagram larger than `SO_SNDBUF` less 32 bytes,
/// and the default (208 KiB) is less than [`UNIX_DATAGRAM_MAX`]. The kernel
/// caps the request at `net.core.wmem_max` and doubles it, which is enough
/// with the default cap.
pub fn room_for_largest_datagram(socket: &Socket) -> io::Result<()> {
    let size = UNIX_DATAGRAM_MAX + 64;
    calls::option(socket, "SO_SNDBUF", size, socket.set_send_buffer_size(size))
}

/// Each datagram a server's Unix datagram socket receives comes with its
/// sender's credentials (`SO_PASSCRED`): the echo goes only to a socket of
/// the sender's own user. Set before the socket is announced, so that no
/// datagram is ever queued without them.
pub(crate) fn pass_credentials(socket: &Socket) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let done = setsockopt(socket, sockopt::PassCred, &true).map_err(io::Error::from);
    calls::option(socket, "SO_PASSCRED", 1, done)
}

/// `fchmod` on the socket before `bind`: the mode the file is created with.
fn set_socket_mode(socket: &Socket, mode: u32) -> io::Result<()> {
    let mode = nix::sys::stat::Mode::from_bits_truncate(mode as nix::libc::mode_t);
    nix::sys::stat::fchmod(socket.as_fd(), mode).map_err(io::Error::from)
}

/// A path in use: removes it only if it is a socket nobody answers on.
fn replace_if_stale(path: &Path, addr: &SockAddr, endpoint: &Endpoint) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Gone since the bind failed: bind again.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(BindError::Other {
                at: endpoint.clone(),
                source: e,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    let ty = endpoint.socket_type();
    let probe = Socket::new(Domain::UNIX, ty.socket2(), None).map_err(|e| BindError::Other {
        at: endpoint.clone(),
        source: e,
    })?;
    // Non-blocking: a live server with a full backlog (or a stopped one)
    // answers EAGAIN at once instead of holding this start-up.
    probe.set_nonblocking(true).map_err(|e| BindError::Other {
        at: endpoint.clone(),
        source: e,
    })?;
    match probe.connect(addr) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            std::fs::remove_file(path).map_err(|e| BindError::Other {
                at: endpoint.clone(),
                source: e,
            })?;
            tracing::warn!(
                "replaced stale socket file {} (no server answered on it)",
                path.display()
            );
            Ok(())
        }
        // It answered, or it is another type of socket, or not ours to probe:
        // someone is there.
        _ => Err(BindError::InUse {
            at: endpoint.clone(),
            taken: Taken::Unix(path.to_path_buf()),
            holders: None,
        }),
    }
}

fn in_use_or(endpoint: &Endpoint, name: &LocalName, e: io::Error) -> BindError {
    if e.raw_os_error() != Some(libc::EADDRINUSE) {
        return BindError::Other {
            at: endpoint.clone(),
            source: e,
        };
    }
    let shown: PathBuf = match name {
        LocalName::Path(path) => path.clone(),
        LocalName::Abstract(n) => format!("@{n}").into(),
    };
    BindError::InUse {
        at: endpoint.clone(),
        taken: Taken::Unix(shown),
        holders: None,
    }
}

/// Permissions of a Unix datagram client's own socket file: anyone may send
/// to it (a server of another user must be able to answer), and the client
/// connects its socket to the server, so the kernel delivers it nothing else.
const CLIENT_MODE: u32 = 0o666;

/// Numbers the temporary paths of this process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A Unix datagram socket bound to a fresh path of its own in the temporary
/// directory (`$TMPDIR`, else `/tmp`), so that a server can answer it. The
/// file is removed when the returned guard is dropped.
pub fn bind_temp_datagram() -> io::Result<(Socket, SocketFile)> {
    let socket = calls::socket(Domain::UNIX, Type::DGRAM, None)?;
    room_for_largest_datagram(&socket)?;
    set_socket_mode(&socket, CLIENT_MODE)?;
    let mut dirs = vec![std::env::temp_dir()];
    if dirs[0] != Path::new("/tmp") {
        dirs.push("/tmp".into());
    }
    let mut last = io::Error::other("no temporary directory");
    for dir in dirs {
        // A file of an earlier process that had this pid may be in the way.
        for _ in 0..16 {
            let path = dir.join(format!(
                "echokit-{}-{}.sock",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let addr = match SockAddr::unix(&path) {
                Ok(addr) => addr,
                // $TMPDIR too long for sun_path: try the next directory.
                Err(e) => {
                    last = e;
                    break;
                }
            };
            match calls::bind(&socket, &addr) {
                Ok(()) => return Ok((socket, SocketFile::at(path)?)),
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => last = e,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
    }
    Err(last)
}
