//! Telling a job stream's client that went away from one that is only slow to read.
//!
//! A follower whose machine or route disappeared sends no FIN and no RST: without a check, the
//! hub keeps its session (a task, a connection slot, the log's read mark) until TCP gives up,
//! about 15 minutes later. The client cannot be asked (a paused `xn -f --follow | less` does
//! not read, so it answers no ping either), but its kernel can: a live peer acknowledges what
//! arrives, with a closed window if it is full, while what the hub sends to a vanished one
//! stays unacknowledged. `TCP_USER_TIMEOUT` is no substitute: since Linux 5.11 it also drops a
//! live peer whose window stays closed that long. The hub pings every stream every few seconds,
//! so a vanished peer always has something unacknowledged.

use std::os::fd::RawFd;
use std::time::Duration;

/// The TCP socket a request came in on, put in each request's extensions by the hub's
/// connection loop. The number is only used to ask the kernel about the connection while the
/// session that answers the request still holds it open.
#[derive(Clone, Copy, Debug)]
pub struct PeerSocket(pub RawFd);

/// The address a request came from, in each request's extensions too: for the log lines that
/// tell an operator who was refused.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a request came from ("?" if the connection loop did not say).
pub fn addr_of<B>(req: &hyper::Request<B>) -> String {
    req.extensions()
        .get::<PeerAddr>()
        .map_or_else(|| "?".into(), |a| a.to_string())
}

/// Whether the peer has acknowledged nothing for longer than `limit` while something the hub
/// sent waits for an acknowledgement. `false` when the kernel cannot say.
pub fn gone(sock: PeerSocket, limit: Duration) -> bool {
    let Some(info) = tcp_info(sock.0) else {
        return false;
    };
    info.tcpi_unacked > 0 && Duration::from_millis(info.tcpi_last_ack_recv.into()) > limit
}

fn tcp_info(fd: RawFd) -> Option<libc::tcp_info> {
    // SAFETY: an all-zero tcp_info is a valid value of this plain C struct.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info` and sets `len`; a closed or
    // non-TCP descriptor only makes it fail.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_quiet_live_connection_is_not_gone_and_a_non_socket_cannot_say() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        // Nothing in flight: however long ago the last acknowledgement was, it is not gone.
        assert!(!gone(PeerSocket(c.as_raw_fd()), Duration::ZERO));
        assert!(tcp_info(c.as_raw_fd()).is_some());
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!gone(PeerSocket(f.as_raw_fd()), Duration::ZERO));
    }
}
