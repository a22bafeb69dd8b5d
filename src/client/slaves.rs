//! `xn --slaves [--json]`: the slaves connected to the hub now, whether they take jobs, their
//! slots, the jobs they hold and their labels: what `--slave NAME` and `--on LABEL` can name.

use super::visible::{cell, pad, visible, width};
use crate::http::HubUrl;
use crate::hub::SlaveInfo;
use anyhow::Result;
use hyper::Method;
use std::io::{BufWriter, Write};

pub async fn run(hub: &HubUrl, json: bool) -> Result<i32> {
    let body = hub.call_raw(Method::GET, "/api/v1/slaves", None).await?;
    let slaves: Vec<SlaveInfo> = hub.parse_answer(&body)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if json {
        let mut text = serde_json::to_vec_pretty(&slaves)?;
        text.push(b'\n');
        out.write_all(&text)?;
    } else {
        out.write_all(&table(&slaves))?;
        if slaves.is_empty() {
            eprintln!("xn: no slave is connected to {}", hub.url);
        }
    }
    out.flush()?;
    Ok(0)
}

/// One line per slave, under a header. BOUND says whether the slave serves with a token bound
/// to its name; TOKEN, which token, is there when the hub names them (to admins).
fn table(slaves: &[SlaveInfo]) -> Vec<u8> {
    // Names and labels are the slaves' own: shown with control characters escaped, and a name
    // with a space in quotes, so that it stays one column (labels have no spaces); padded by
    // the terminal columns it takes, which for a double-width script are not its characters.
    let names: Vec<_> = slaves.iter().map(|s| cell(&s.name)).collect();
    let name_width = names.iter().map(|n| width(n)).max().unwrap_or(0).max(4);
    // Token names are the hub's (1 to 64 of a few safe characters), but only the hub says so.
    let tokens: Option<Vec<_>> = slaves.iter().any(|s| s.token.is_some()).then(|| {
        slaves
            .iter()
            .map(|s| visible(s.token.as_deref().unwrap_or("-")))
            .collect()
    });
    let token_width = tokens.as_ref().map_or(0, |t| {
        t.iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .max(5)
    });
    let token_head = match tokens {
        Some(_) => format!("{:<token_width$}  ", "TOKEN"),
        None => String::new(),
    };
    let mut t = format!(
        "{:<name_width$}  {:<8}  {:>5}  {:<16}  BOUND  {token_head}LABELS\n",
        "NAME", "STATE", "SLOTS", "JOBS"
    );
    for (i, (s, name)) in slaves.iter().zip(&names).enumerate() {
        let jobs = match s.running.as_slice() {
            [] => "-".to_string(),
            ids => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        };
        let labels = if s.labels.is_empty() {
            "-".to_string()
        } else {
            visible(&s.labels.join(",")).into_owned()
        };
        // A draining slave finishes what it holds and takes nothing new (it is stopping, or its
        // name was bound to another token).
        let state = if s.draining { "draining" } else { "ready" };
        let bound = if s.bound { "yes" } else { "no" };
        let token = match &tokens {
            Some(t) => format!("{:<token_width$}  ", t[i]),
            None => String::new(),
        };
        t.push_str(&format!(
            "{}  {state:<8}  {:>5}  {jobs:<16}  {bound:<5}  {token}{labels}\n",
            pad(name, name_width),
            s.slots
        ));
    }
    t.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slave(name: &str, slots: u32, running: Vec<u64>, labels: &[&str]) -> SlaveInfo {
        SlaveInfo {
            name: name.into(),
            slots,
            running,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            draining: false,
            bound: false,
            token: None,
        }
    }

    #[test]
    fn a_row_per_slave_with_its_jobs_and_labels() {
        let slaves = [
            SlaveInfo {
                draining: true,
                bound: true,
                ..slave("build-host-1", 4, vec![3, 17], &["os=linux", "gpu"])
            },
            slave("b", 1, vec![], &[]),
            slave("\x1b[2J", 1, vec![], &["k=\x1b]0;t\x07"]),
        ];
        assert_eq!(
            String::from_utf8(table(&slaves)).unwrap(),
            "NAME          STATE     SLOTS  JOBS              BOUND  LABELS\n\
             build-host-1  draining      4  3,17              yes    os=linux,gpu\n\
             b             ready         1  -                 no     -\n\
             \\e[2J         ready         1  -                 no     k=\\e]0;t\\x07\n"
        );
        assert_eq!(
            String::from_utf8(table(&[])).unwrap(),
            "NAME  STATE     SLOTS  JOBS              BOUND  LABELS\n"
        );
    }

    #[test]
    fn a_name_with_a_space_is_quoted_and_stays_one_column() {
        let slaves = [
            slave("build box", 2, vec![4], &["gpu"]),
            slave("b", 1, vec![], &[]),
        ];
        assert_eq!(
            String::from_utf8(table(&slaves)).unwrap(),
            "NAME         STATE     SLOTS  JOBS              BOUND  LABELS\n\
             \"build box\"  ready         2  4                 no     gpu\n\
             b            ready         1  -                 no     -\n"
        );
    }

    #[test]
    fn a_double_width_name_is_padded_by_its_columns() {
        let slaves = [
            slave("\u{6784}\u{5efa}", 1, vec![], &[]),
            slave("b", 1, vec![], &[]),
        ];
        assert_eq!(
            String::from_utf8(table(&slaves)).unwrap(),
            "NAME  STATE     SLOTS  JOBS              BOUND  LABELS\n\
             \u{6784}\u{5efa}  ready         1  -                 no     -\n\
             b     ready         1  -                 no     -\n"
        );
    }

    #[test]
    fn an_admin_sees_which_token_each_slave_serves_with() {
        let slaves = [
            SlaveInfo {
                bound: true,
                token: Some("box-7-key".into()),
                ..slave("box-7", 2, vec![], &["gpu"])
            },
            SlaveInfo {
                token: Some("slave".into()),
                ..slave("box-8", 1, vec![5], &[])
            },
        ];
        assert_eq!(
            String::from_utf8(table(&slaves)).unwrap(),
            "NAME   STATE     SLOTS  JOBS              BOUND  TOKEN      LABELS\n\
             box-7  ready         2  -                 yes    box-7-key  gpu\n\
             box-8  ready         1  5                 no     slave      -\n"
        );
    }
}
