//! Ages and lifetimes as people write them: `30d`, `12h`, `90m`, `45s` (`xnhub --retain`,
//! `xnhub token create --expires`), and back again for messages and lists.

use std::time::Duration;

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

/// A span in its largest whole unit, as [`parse_age`] reads it: `3d`, `5h`, `12m`, `40s`.
pub fn show_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        86_400.. => format!("{}d", s / 86_400),
        3600.. => format!("{}h", s / 3600),
        60.. => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// A span in the largest unit that shows it exactly, as [`parse_age`] reads it: `90m`, not
/// `1h` (for what was given, such as `--retain`, where [`show_age`] would round).
pub fn show_exact(d: Duration) -> String {
    let s = d.as_secs();
    match [86_400, 3600, 60]
        .into_iter()
        .find(|&u| s > 0 && s % u == 0)
    {
        Some(86_400) => format!("{}d", s / 86_400),
        Some(3600) => format!("{}h", s / 3600),
        Some(_) => format!("{}m", s / 60),
        None => format!("{s}s"),
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

    #[test]
    fn a_shown_age_is_its_largest_whole_unit() {
        let show = |s| show_age(Duration::from_secs(s));
        assert_eq!(show(0), "0s");
        assert_eq!(show(59), "59s");
        assert_eq!(show(61), "1m");
        assert_eq!(show(7200 + 59), "2h");
        assert_eq!(show(3 * 86_400 + 5), "3d");
        assert_eq!(show(5400), "1h");
        assert_eq!(parse_age(&show(7200)), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn an_exact_age_reads_back_as_the_same_span() {
        for secs in [1, 45, 60, 5400, 7200, 86_400, 90_000, 30 * 86_400] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_age(&show_exact(d)), Ok(d), "{}", show_exact(d));
        }
        assert_eq!(show_exact(Duration::from_secs(5400)), "90m");
    }
}
