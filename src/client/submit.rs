//! `xn -s LINE [--wait] [--no-tty]`: submit a job; print its id, or follow it to its end.

use super::follow;
use crate::http::HubUrl;
use crate::wire::{JobSpec, SubmitReply};
use anyhow::Result;
use hyper::Method;
use std::io::IsTerminal;

pub async fn run(hub: &HubUrl, line: &str, tty: bool, wait: bool) -> Result<i32> {
    let mut spec = JobSpec::shell(line);
    spec.tty = tty;
    // A job submitted from a terminal starts with that terminal's size.
    if tty && std::io::stdout().is_terminal() {
        if let Ok((cols, rows)) = crossterm::terminal::size() {
            if rows > 0 && cols > 0 {
                (spec.rows, spec.cols) = (rows, cols);
            }
        }
    }
    let reply: SubmitReply = hub.call(Method::POST, "/api/v1/jobs", Some(&spec)).await?;
    if wait {
        follow::run(hub, reply.id).await
    } else {
        println!("{}", reply.id);
        Ok(0)
    }
}
