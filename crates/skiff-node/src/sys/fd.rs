//! Taking ownership of descriptors: one received over a Unix socket, and one handed to
//! tokio's reactor (`AsyncFd`'s constructors are `unsafe` since tokio 1.51: the descriptor
//! must stay the same open file for the `AsyncFd`'s life, which [`Pollable`] guarantees by
//! never giving out the inner descriptor mutably).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;

/// An owned descriptor registered with the tokio reactor (see the module docs).
#[derive(Debug)]
pub struct Pollable(AsyncFd<OwnedFd>);

impl Pollable {
    /// Registers `fd` for `interest`. Must be called inside a tokio runtime.
    pub fn new(fd: OwnedFd, interest: Interest) -> io::Result<Pollable> {
        // SAFETY: the `AsyncFd` takes `fd`, an `OwnedFd`, which stays open and names the same
        // file until dropped with the `AsyncFd` (which deregisters it first); `as_raw_fd`
        // always returns that descriptor, and `Pollable` never hands out `&mut OwnedFd`, so
        // nothing can swap it.
        let afd =
            unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)?;
        Ok(Pollable(afd))
    }

    /// Waits until the descriptor is ready for `interest`.
    pub async fn ready(&self, interest: Interest) -> io::Result<AsyncFdReadyGuard<'_, OwnedFd>> {
        self.0.ready(interest).await
    }

    /// Waits until the descriptor is readable.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, OwnedFd>> {
        self.0.readable().await
    }
}

/// `recvmsg` of one message of at most `buf.len()` bytes from the Unix socket `sock`, with
/// the descriptors it carries (`SCM_RIGHTS`, room for one; received close-on-exec).
/// Returns the bytes received (0: the peer is gone) and the descriptors, now owned.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: SCM_RIGHTS just installed each of these descriptors in this process's
            // table for this call; nothing else knows or owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}
