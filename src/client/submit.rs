//! `xn -s LINE [--wait] [--no-tty]`: submit a job; print its id, or follow it to its end.

use super::attach::{self, AttachOptions};
use super::follow;
use crate::http::HubUrl;
use crate::wire::{JobSpec, SubmitReply};
use anyhow::Result;
use hyper::Method;
use std::io::IsTerminal;

/// What to do once the job is accepted.
pub enum Then {
    PrintId,
    Wait,
    Attach(AttachOptions),
}

pub async fn run(hub: &HubUrl, line: &str, tty: bool, then: Then) -> Result<i32> {
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
    match then {
        Then::PrintId => {
            println!("{}", reply.id);
            Ok(0)
        }
        Then::Wait => follow::run(hub, reply.id).await,
        Then::Attach(opts) => attach::run(hub, reply.id, &opts).await,
    }
}
