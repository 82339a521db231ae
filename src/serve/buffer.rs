//! Buffers of the echo data path, reused so that a message costs no allocation.
//!
//! Each event loop reads into one scratch buffer shared by all its
//! connections and writes the bytes straight back. Only when the client's
//! receive window is full does a connection hold bytes of its own: the unsent
//! rest of one read, in a [`Pending`] buffer taken from the loop's
//! [`BufPool`] and given back once it is flushed. An idle connection holds no
//! buffer; a connection never holds more than one.

/// Size of the scratch buffer and of each pending buffer: one `read` takes at
/// most this much, so one pending buffer always holds the rest of a read.
/// 64 KiB moves bulk data in few syscalls (loopback segments are up to 64 KiB)
/// while a loop's scratch stays in L2 cache.
pub const BUF_SIZE: usize = 64 * 1024;

/// Free buffers a loop keeps for reuse: enough for the connections that hit
/// back-pressure at the same time in a bulk benchmark, few enough (4 MiB) that
/// a burst of stalled clients does not pin memory after they leave.
const POOL_KEEP: usize = 64;

/// A loop's free buffers.
#[derive(Debug)]
pub(crate) struct BufPool {
    free: Vec<Box<[u8]>>,
}

impl BufPool {
    pub(crate) fn new() -> BufPool {
        BufPool { free: Vec::new() }
    }

    /// A buffer of [`BUF_SIZE`] bytes: a free one, or a new one.
    pub(crate) fn take(&mut self) -> Box<[u8]> {
        self.free
            .pop()
            .unwrap_or_else(|| vec![0; BUF_SIZE].into_boxed_slice())
    }

    /// Returns a buffer for reuse, or frees it when the pool is full.
    pub(crate) fn give(&mut self, buf: Box<[u8]>) {
        if self.free.len() < POOL_KEEP {
            self.free.push(buf);
        }
    }
}

/// Bytes read and not yet written back.
#[derive(Debug)]
pub(crate) struct Pending {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Pending {
    /// Copies `data` into `buf`.
    ///
    /// # Panics
    /// If `data` is longer than `buf`; callers pass the rest of one read,
    /// which is never longer than [`BUF_SIZE`].
    pub(crate) fn new(mut buf: Box<[u8]>, data: &[u8]) -> Pending {
        buf[..data.len()].copy_from_slice(data);
        Pending {
            buf,
            start: 0,
            end: data.len(),
        }
    }

    /// The bytes still to send.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes as sent.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Whether everything was sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The buffer, to give back to the pool.
    pub(crate) fn into_buf(self) -> Box<[u8]> {
        self.buf
    }
}
