//! `xn --slaves [--json]`: the slaves connected to the hub now, whether they take jobs, their
//! slots, the jobs they hold and their labels: what `--slave NAME` and `--on LABEL` can name.

use super::visible::visible;
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

/// One line per slave, under a header.
fn table(slaves: &[SlaveInfo]) -> Vec<u8> {
    // Names and labels are the slaves' own: shown with control characters escaped.
    let names: Vec<_> = slaves.iter().map(|s| visible(&s.name)).collect();
    let name_width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut t = format!(
        "{:<name_width$}  {:<8}  {:>5}  {:<16}  LABELS\n",
        "NAME", "STATE", "SLOTS", "JOBS"
    );
    for (s, name) in slaves.iter().zip(&names) {
        let jobs = match s.running.as_slice() {
            [] => "-".to_string(),
            ids => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        };
        let labels = if s.labels.is_empty() {
            "-".to_string()
        } else {
            visible(&s.labels.join(",")).into_owned()
        };
        // A draining slave finishes what it holds and takes nothing new (it is stopping).
        let state = if s.draining { "draining" } else { "ready" };
        t.push_str(&format!(
            "{name:<name_width$}  {state:<8}  {:>5}  {jobs:<16}  {labels}\n",
            s.slots
        ));
    }
    t.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_slave_with_its_jobs_and_labels() {
        let slaves = [
            SlaveInfo {
                name: "build-host-1".into(),
                slots: 4,
                running: vec![3, 17],
                labels: vec!["os=linux".into(), "gpu".into()],
                draining: true,
            },
            SlaveInfo {
                name: "b".into(),
                slots: 1,
                running: vec![],
                labels: vec![],
                draining: false,
            },
            SlaveInfo {
                name: "\x1b[2J".into(),
                slots: 1,
                running: vec![],
                labels: vec!["k=\x1b]0;t\x07".into()],
                draining: false,
            },
        ];
        assert_eq!(
            String::from_utf8(table(&slaves)).unwrap(),
            "NAME          STATE     SLOTS  JOBS              LABELS\n\
             build-host-1  draining      4  3,17              os=linux,gpu\n\
             b             ready         1  -                 -\n\
             \\e[2J         ready         1  -                 k=\\e]0;t\\x07\n"
        );
        assert_eq!(
            String::from_utf8(table(&[])).unwrap(),
            "NAME  STATE     SLOTS  JOBS              LABELS\n"
        );
    }
}
