//! Requests refused for their token, counted so that a client that keeps presenting a bad
//! token adds at most two rows a minute to the audit log for its address and token: one at
//! the first refusal, at once, and one when that minute is over saying how many followed (none
//! if none did). Past [`MAX_OPEN`] addresses and tokens in a minute, the rest are counted
//! together, in one row when their minute is over. So refusals add at most
//! `2 * MAX_OPEN + 1` rows a minute however many come, and this holds at most `MAX_OPEN + 1`
//! tallies in memory.
//!
//! Pure bookkeeping: the caller says what time it is and stores the rows it is given.

use super::UNKNOWN;
use crate::wire::{AuditAction, AuditEntry};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// How long one tally counts before its row is written.
pub const WINDOW_MS: u64 = 60_000;

/// Addresses and tokens tallied one by one at a time; the rest are counted together.
pub const MAX_OPEN: usize = 256;

/// Longest request target recorded (a path can be as long as the request head allows).
const MAX_TARGET: usize = 200;

/// The refusals of the current minute, per address and token.
#[derive(Default)]
pub struct Refusals(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    open: HashMap<Key, Tally>,
    /// Refusals of addresses and tokens beyond [`MAX_OPEN`].
    others: Option<Tally>,
}

/// Whose refusals are counted together: an address, and the token's name where the hub knows
/// it (an expired token); `None` for a token it does not know.
#[derive(Hash, PartialEq, Eq)]
struct Key {
    peer: Option<IpAddr>,
    token: Option<String>,
}

struct Tally {
    since_ms: u64,
    /// Refusals not yet in a row.
    count: u64,
    latest_ms: u64,
    latest_target: String,
}

impl Tally {
    fn new(now: u64, target: &str, count: u64) -> Tally {
        Tally {
            since_ms: now,
            count,
            latest_ms: now,
            latest_target: bounded(target),
        }
    }

    fn add(&mut self, now: u64, target: &str) {
        self.count += 1;
        self.latest_ms = now;
        if self.latest_target != target {
            self.latest_target = bounded(target);
        }
    }
}

fn bounded(target: &str) -> String {
    let mut end = target.len().min(MAX_TARGET);
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    target[..end].to_string()
}

impl Refusals {
    /// A request for `target` (`GET /api/v1/jobs`) refused at `now` (ms) because of `why`:
    /// the row to store now if it is the first of its address and token this minute, else
    /// `None` (it is counted).
    pub fn refused(
        &self,
        now: u64,
        peer: Option<IpAddr>,
        token: Option<&str>,
        target: &str,
        why: &str,
    ) -> Option<AuditEntry> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = Key {
            peer,
            token: token.map(str::to_string),
        };
        if let Some(tally) = inner.open.get_mut(&key) {
            tally.add(now, target);
            return None;
        }
        if inner.open.len() >= MAX_OPEN {
            match &mut inner.others {
                Some(tally) => tally.add(now, target),
                None => inner.others = Some(Tally::new(now, target, 1)),
            }
            return None;
        }
        inner.open.insert(key, Tally::new(now, target, 0));
        Some(AuditEntry {
            id: 0,
            time_ms: now,
            actor: token.unwrap_or(UNKNOWN).to_string(),
            action: AuditAction::Refused,
            target: bounded(target),
            detail: why.to_string(),
            peer: peer.map(|p| p.to_string()),
            count: 1,
        })
    }

    /// The rows of the tallies whose minute is over at `now` (of every tally, with `all`: the
    /// hub stops), which end: the next refusal of theirs starts a new one.
    pub fn due(&self, now: u64, all: bool) -> Vec<AuditEntry> {
        let over = |t: &Tally| all || now.saturating_sub(t.since_ms) >= WINDOW_MS;
        let mut rows = Vec::new();
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.open.retain(|key, tally| {
            if !over(tally) {
                return true;
            }
            if tally.count > 0 {
                let kind = match &key.token {
                    Some(name) => format!("token {name} expired"),
                    None => "a wrong or revoked token".to_string(),
                };
                rows.push(AuditEntry {
                    id: 0,
                    time_ms: tally.latest_ms,
                    actor: key.token.as_deref().unwrap_or(UNKNOWN).to_string(),
                    action: AuditAction::Refused,
                    target: std::mem::take(&mut tally.latest_target),
                    detail: format!(
                        "{} more refused within a minute of the first ({kind}); the latest \
                         request is the target",
                        tally.count
                    ),
                    peer: key.peer.map(|p| p.to_string()),
                    count: tally.count,
                });
            }
            false
        });
        if let Some(tally) = inner.others.take_if(|t| over(t)) {
            rows.push(AuditEntry {
                id: 0,
                time_ms: tally.latest_ms,
                actor: UNKNOWN.to_string(),
                action: AuditAction::Refused,
                target: tally.latest_target,
                detail: format!(
                    "{} refused from more than {MAX_OPEN} addresses and tokens within a \
                     minute, counted together; the latest request is the target",
                    tally.count
                ),
                peer: None,
                count: tally.count,
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHY: &str = "the token is not valid (wrong, or revoked)";

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    #[test]
    fn a_flood_from_one_address_is_one_row_then_one_count_a_minute() {
        let r = Refusals::default();
        let first = r
            .refused(1000, ip(1), None, "GET /api/v1/jobs", WHY)
            .unwrap();
        assert_eq!((first.actor.as_str(), first.count), (UNKNOWN, 1));
        assert_eq!(first.peer.as_deref(), Some("10.0.0.1"));
        assert_eq!(first.detail, WHY);
        for i in 0..999 {
            assert!(r.refused(1001 + i, ip(1), None, "GET /x", WHY).is_none());
        }
        assert!(r.due(1000 + WINDOW_MS - 1, false).is_empty());
        let rows = r.due(1000 + WINDOW_MS, false);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].count, rows[0].time_ms), (999, 1999));
        assert_eq!(rows[0].target, "GET /x");
        assert!(rows[0].detail.starts_with("999 more refused"), "{rows:?}");
        // Its minute over, the next refusal is a row of its own again.
        assert!(r.due(u64::MAX, true).is_empty());
        assert!(r.refused(70_000, ip(1), None, "GET /x", WHY).is_some());
    }

    #[test]
    fn addresses_and_tokens_are_counted_apart_and_lone_ones_add_no_second_row() {
        let r = Refusals::default();
        assert!(r.refused(0, ip(1), None, "GET /", WHY).is_some());
        assert!(r.refused(0, ip(2), None, "GET /", WHY).is_some());
        let expired = r
            .refused(0, ip(1), Some("temp"), "GET /", "expired")
            .unwrap();
        assert_eq!(expired.actor, "temp");
        assert!(r
            .refused(5, ip(1), Some("temp"), "GET /", "expired")
            .is_none());
        let rows = r.due(WINDOW_MS, false);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].actor.as_str(), rows[0].count), ("temp", 1));
        assert!(rows[0].detail.contains("token temp expired"), "{rows:?}");
    }

    #[test]
    fn past_the_open_tallies_the_rest_are_counted_together() {
        let r = Refusals::default();
        for n in 0..MAX_OPEN as u32 {
            assert!(r.refused(0, ip(n), None, "GET /", WHY).is_some());
        }
        for n in 0..1000 {
            assert!(r.refused(1, ip(10_000 + n), None, "GET /", WHY).is_none());
        }
        let rows = r.due(0, true);
        assert_eq!(rows.len(), 1, "lone refusals add no row; the rest add one");
        assert_eq!((rows[0].peer.as_deref(), rows[0].count), (None, 1000));
        // All ended: room again.
        assert!(r.refused(2, ip(99_999), None, "GET /", WHY).is_some());
    }

    #[test]
    fn a_long_target_is_cut_on_a_character_boundary() {
        let r = Refusals::default();
        let long = format!("GET /{}", "é".repeat(300));
        let row = r.refused(0, ip(1), None, &long, WHY).unwrap();
        assert!(row.target.len() <= MAX_TARGET && long.starts_with(&row.target));
    }
}
