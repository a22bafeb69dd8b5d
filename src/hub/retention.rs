//! `xnhub --retain AGE`: jobs that ended longer ago than AGE are deleted with their output,
//! at start-up and then every so often (a tenth of AGE, between a second and an hour). Live
//! jobs are never touched, however old.

use super::state::Hub;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deletes what has expired now, and again after every interval, until shutdown.
pub async fn timer(hub: Arc<Hub>, retain: Duration, shutdown: CancellationToken) {
    let every = (retain / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let age_ms = u64::try_from(retain.as_millis()).unwrap_or(u64::MAX);
    loop {
        match hub.expire(age_ms).await {
            Ok(0) => {}
            Ok(n) => {
                let jobs = if n == 1 { "job" } else { "jobs" };
                tracing::info!("deleted {n} {jobs} that ended more than {retain:?} ago");
            }
            Err(e) => tracing::error!("deleting expired jobs: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Parses an age like `30d`, `12h`, `90m` or `45s` (a whole number and one unit).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not an age like 30d, 12h, 90m or 45s"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        "" => return Err(format!("{s:?} needs a unit: d, h, m or s (like 30d)")),
        _ => return Err(format!("{s:?}: the unit is d, h, m or s (like 30d)")),
    };
    match n.checked_mul(secs) {
        Some(0) => Err("the age must be more than 0".into()),
        Some(t) => Ok(Duration::from_secs(t)),
        None => Err(format!("{s:?} is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_have_a_number_and_a_unit() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert!(parse_age("30").unwrap_err().contains("needs a unit"));
        assert!(parse_age("3w").unwrap_err().contains("the unit is"));
        assert!(parse_age("d").unwrap_err().contains("not an age"));
        assert!(parse_age("0h").unwrap_err().contains("more than 0"));
        assert!(parse_age("-1d").is_err());
        assert!(parse_age("99999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }
}
