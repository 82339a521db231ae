//! A shutdown request that event loops can wait on.
//!
//! `main` owns the signal handling and calls [`Shutdown::request`]; each
//! event loop registers its [`mio::Waker`] so that a request wakes it out of
//! `epoll_wait` at once. Loops check [`Shutdown::is_requested`] once per turn:
//! an atomic load, nothing on the data path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A cloneable handle: every clone sees the same request.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    requested: AtomicBool,
    wakers: Mutex<Vec<Arc<mio::Waker>>>,
}

impl Shutdown {
    /// A handle with no request yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks every loop to stop accepting and drain; wakes them all.
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::Release);
        let wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for waker in wakers.iter() {
            if let Err(e) = waker.wake() {
                tracing::warn!(
                    "cannot wake an event loop for shutdown: {}",
                    crate::text::os_error(&e)
                );
            }
        }
    }

    /// Whether shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
    }

    /// Registers a loop's waker. A loop that registers after the request is
    /// woken at once, so no request is missed.
    pub(crate) fn register(&self, waker: Arc<mio::Waker>) {
        let mut wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.is_requested() {
            let _ = waker.wake();
        }
        wakers.push(waker);
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("requested", &self.is_requested())
            .finish()
    }
}
