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
    tcp_info(sock.0).is_some_and(|info| unanswered(&info, limit))
}

/// The peer has acknowledged nothing for longer than `limit`, something waits for an
/// acknowledgement, and nothing answered what the hub (or its kernel, retransmitting) sent
/// last, though there was time to.
///
/// The last part keeps a live peer that is short of memory: its kernel may drop what arrives
/// even inside the window it offered, and answer each segment with a zero window instead of an
/// acknowledgement of it. The data then stays unacknowledged and is sent again with a backoff
/// that soon exceeds `limit`, so the last acknowledgement can be older than `limit` although
/// the peer answered the latest retransmission. A vanished peer answers none.
fn unanswered(info: &libc::tcp_info, limit: Duration) -> bool {
    let ms = |v: u32| Duration::from_millis(v.into());
    let (last_ack, last_sent) = (ms(info.tcpi_last_ack_recv), ms(info.tcpi_last_data_sent));
    // Long enough for an answer to come back: two smoothed round trips, at least 200 ms.
    let answer_time = Duration::from_micros(2 * u64::from(info.tcpi_rtt)).max(ANSWER_TIME_MIN);
    // An answer to the latest send came after it, or in the same tick of the kernel's clock
    // (on loopback): `last_ack` is then at most `last_sent`.
    info.tcpi_unacked > 0 && last_ack > limit && last_ack > last_sent && last_sent >= answer_time
}

/// The least time given a peer to answer what was just sent.
const ANSWER_TIME_MIN: Duration = Duration::from_millis(200);

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

    #[test]
    fn a_peer_is_gone_only_if_it_left_the_latest_send_unanswered() {
        let info = |unacked, last_ack_recv, last_data_sent| {
            // SAFETY: an all-zero tcp_info is a valid value of this plain C struct.
            let mut i: libc::tcp_info = unsafe { std::mem::zeroed() };
            (i.tcpi_unacked, i.tcpi_last_ack_recv) = (unacked, last_ack_recv);
            (i.tcpi_last_data_sent, i.tcpi_rtt) = (last_data_sent, 300);
            i
        };
        let limit = Duration::from_secs(2);
        // Vanished: a retransmission 1 s ago, no acknowledgement for 3 s.
        assert!(unanswered(&info(1, 3000, 1000), limit));
        // Nothing in flight (a live peer with a closed window), or an acknowledgement lately.
        assert!(!unanswered(&info(0, 3000, 1000), limit));
        assert!(!unanswered(&info(1, 1500, 1000), limit));
        // A peer short of memory answered the latest retransmission, without acknowledging it.
        assert!(!unanswered(&info(1, 2900, 3000), limit));
        assert!(!unanswered(&info(1, 2924, 2924), limit));
        // Sent just now: too early to tell.
        assert!(!unanswered(&info(1, 3000, 100), limit));
    }
}
