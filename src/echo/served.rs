//! What this process serves datagrams on: its UDP ports and its Unix
//! datagram socket files, so that no echo is ever sent to one of them.
//!
//! Two datagram endpoints of one process answering each other would loop
//! for ever (one forged datagram sets them off), and each loop only knows
//! its own socket; this is the process-wide list they all consult. Each
//! loop registers its socket for as long as it runs ([`Served`] removes it
//! when dropped).
//!
//! A UDP port is looked up for every datagram, so ports are kept in a
//! bitmap of 65,536 bits that a lookup reads with one atomic load; socket
//! files are looked up once per sender per batch, under a lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One bit per UDP port: set while at least one socket serves it.
static PORTS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// What is registered, with how many sockets each: ports (two sockets, one
/// IPv4 and one IPv6, may share one) and socket files by device and inode.
static REGISTERED: Mutex<Registered> = Mutex::new(Registered {
    ports: Vec::new(),
    files: Vec::new(),
});

struct Registered {
    ports: Vec<u16>,
    files: Vec<(u64, u64)>,
}

/// Something this process serves on, registered until dropped.
#[derive(Debug)]
pub(crate) enum Served {
    /// A UDP port.
    Port(u16),
    /// A Unix socket file, by device and inode.
    File(u64, u64),
}

fn registered() -> std::sync::MutexGuard<'static, Registered> {
    // The lists stay whole whatever panicked while holding the lock: each
    // change is one push or one remove.
    REGISTERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bit(port: u16) -> (&'static AtomicU64, u64) {
    (&PORTS[usize::from(port / 64)], 1 << (port % 64))
}

impl Served {
    /// Registers a UDP port this process serves on.
    pub(crate) fn port(port: u16) -> Served {
        registered().ports.push(port);
        let (word, mask) = bit(port);
        word.fetch_or(mask, Ordering::Release);
        Served::Port(port)
    }

    /// Registers a Unix socket file this process serves on.
    pub(crate) fn file(dev: u64, ino: u64) -> Served {
        registered().files.push((dev, ino));
        Served::File(dev, ino)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let mut list = registered();
        match *self {
            Served::Port(port) => {
                if let Some(i) = list.ports.iter().position(|&p| p == port) {
                    list.ports.swap_remove(i);
                }
                if !list.ports.contains(&port) {
                    let (word, mask) = bit(port);
                    word.fetch_and(!mask, Ordering::Release);
                }
            }
            Served::File(dev, ino) => {
                if let Some(i) = list.files.iter().position(|&f| f == (dev, ino)) {
                    list.files.swap_remove(i);
                }
            }
        }
    }
}

/// Whether this process serves UDP on `port` (on some address).
pub(crate) fn serves_port(port: u16) -> bool {
    let (word, mask) = bit(port);
    word.load(Ordering::Acquire) & mask != 0
}

/// Whether this process serves on the Unix socket file with this device
/// and inode (under whatever name).
pub(crate) fn serves_file(dev: u64, ino: u64) -> bool {
    registered().files.contains(&(dev, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_served_while_any_of_its_sockets_is() {
        // A port no other test registers.
        let port = 61_234;
        assert!(!serves_port(port));
        let v4 = Served::port(port);
        let v6 = Served::port(port);
        assert!(serves_port(port));
        assert!(!serves_port(port + 1) && !serves_port(port - 1));
        drop(v4);
        assert!(serves_port(port), "the IPv6 socket still serves it");
        drop(v6);
        assert!(!serves_port(port));
    }

    #[test]
    fn socket_files_are_known_by_device_and_inode() {
        let file = Served::file(1, 987_654_321);
        assert!(serves_file(1, 987_654_321));
        assert!(!serves_file(2, 987_654_321));
        drop(file);
        assert!(!serves_file(1, 987_654_321));
    }
}
