//! Claims: a slave process's proof that the hub assigned it a job, which survives a crash of
//! the hub.
//!
//! The hub stores an assignment after sending it (storing first would hold every dispatch
//! up for a commit). A crash in between leaves the job queued in the database while a slave
//! runs it. Without a proof, the hub cannot tell that slave from any other holder of the
//! slave token listing the job in its hello, so it had to stop the job and run it again.
//!
//! Each `assign` therefore carries a claim: an HMAC-SHA256, under a key kept in the job
//! database, of the job, its attempt, and the slave's name and instance id (random, never
//! shown). The slave lists the claim with the job in its hello. Only the process the
//! assignment went to can produce it, and it is worth nothing for another attempt of the job.
//! `ring`'s HMAC is used: it is already in the build, through rustls.

use crate::wire::JobId;
use ring::hmac;
use std::fmt::Write;

pub struct Claims(hmac::Key);

/// Bytes of key the job database keeps.
pub const KEY_LEN: usize = 32;

impl Claims {
    pub fn new(key: &[u8]) -> Claims {
        Claims(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The claim for attempt `attempt` of job `job`, assigned to slave `name`, process
    /// `instance`: 64 hex digits.
    pub fn sign(&self, job: JobId, attempt: u32, name: &str, instance: u64) -> String {
        let tag = hmac::sign(&self.0, &message(job, attempt, name, instance));
        let mut hex = String::with_capacity(2 * tag.as_ref().len());
        for b in tag.as_ref() {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    /// Whether `claim` is the one [`Claims::sign`] gave for these (compared in constant time).
    pub fn check(&self, claim: &str, job: JobId, attempt: u32, name: &str, instance: u64) -> bool {
        let Some(tag) = unhex(claim) else {
            return false;
        };
        hmac::verify(&self.0, &message(job, attempt, name, instance), &tag).is_ok()
    }
}

/// What is signed: every part on its own, so no two assignments share a message.
fn message(job: JobId, attempt: u32, name: &str, instance: u64) -> Vec<u8> {
    format!("execnode assignment 1\0{job}\0{attempt}\0{instance}\0{name}").into_bytes()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_proves_one_assignment_only() {
        let claims = Claims::new(&[7; KEY_LEN]);
        let c = claims.sign(12, 1, "s1", 99);
        assert_eq!(c.len(), 64);
        assert!(claims.check(&c, 12, 1, "s1", 99));
        // Another job, attempt, name or process; or a claim under another hub's key.
        assert!(!claims.check(&c, 13, 1, "s1", 99));
        assert!(!claims.check(&c, 12, 2, "s1", 99));
        assert!(!claims.check(&c, 12, 1, "s2", 99));
        assert!(!claims.check(&c, 12, 1, "s1", 98));
        assert!(!Claims::new(&[8; KEY_LEN]).check(&c, 12, 1, "s1", 99));
        // Not hex, the wrong length, upper case of the right one (accepted), empty.
        assert!(!claims.check(
            &c.replace(|ch: char| ch.is_ascii_digit(), "z"),
            12,
            1,
            "s1",
            99
        ));
        assert!(!claims.check(&c[..62], 12, 1, "s1", 99));
        assert!(claims.check(&c.to_uppercase(), 12, 1, "s1", 99));
        assert!(!claims.check("", 12, 1, "s1", 99));
    }
}
