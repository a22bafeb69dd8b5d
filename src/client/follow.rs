//! Follows a job's stream to its end (`xn -f ID --follow`, `xn -s LINE --wait`): output to
//! stdout/stderr as it is produced, then the job's exit code. The stream's closing message
//! carries the byte totals; a stream that ends short is an error, never a silent success.

use super::output::{Fd, Sink};
use crate::conn::{self, Incoming};
use crate::http::HubUrl;
use crate::wire::{DataFrame, JobId, Stream, StreamMsg, DATA_HEADER_LEN};
use anyhow::{bail, Result};

pub async fn run(hub: &HubUrl, id: JobId) -> Result<i32> {
    let ws = hub
        .websocket(&format!("/api/v1/jobs/{id}/stream?stdout=0&stderr=0"))
        .await?;
    let (mut rd, _tx) = conn::start(ws);
    let mut out = Sink::new(Fd::Stdout);
    let mut err = Sink::new(Fd::Stderr);
    let mut pos = [0u64; 2];
    while let Some(msg) = rd.recv::<StreamMsg>().await? {
        match msg {
            Incoming::Data(frame) => {
                let f = DataFrame::decode(&frame)?;
                let i = usize::from(f.stream == Stream::Stderr);
                if f.offset != pos[i] {
                    bail!(
                        "job {id}: the hub sent {:?} from byte {} but {} bytes were received",
                        f.stream,
                        f.offset,
                        pos[i]
                    );
                }
                pos[i] += f.data.len() as u64;
                let sink = if i == 0 { &mut out } else { &mut err };
                sink.write(frame.slice(DATA_HEADER_LEN..)).await?;
            }
            Incoming::Msg(StreamMsg::End { job }) => {
                out.close()?;
                err.close()?;
                if pos != [job.stdout_len, job.stderr_len] {
                    bail!(
                        "job {id}: output truncated: received {}+{} of {}+{} bytes",
                        pos[0],
                        pos[1],
                        job.stdout_len,
                        job.stderr_len
                    );
                }
                return Ok(job.client_exit_code().unwrap_or(1));
            }
            Incoming::Msg(StreamMsg::Job { .. }) => {}
            Incoming::Msg(StreamMsg::Error { message }) => eprintln!("xn: hub: {message}"),
            Incoming::Bad(e) => eprintln!("xn: unreadable message from hub: {e}"),
        }
    }
    bail!("job {id}: the hub closed the stream before the job ended")
}
