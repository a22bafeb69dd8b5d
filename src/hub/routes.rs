//! The REST API and the WebSocket upgrades, all on one port. Each handler answers one route;
//! an error is a JSON body with a 4xx/5xx status and the connection goes on.

use super::audit::{self, Actor};
use super::auth::Principal;
use super::respond::{self, HubResponse, LogBody, Reject};
use super::state::JobError;
use super::{slaves, stream, tokens, web, Ctx};
use crate::limits::MAX_SUBMIT_BODY_BYTES;
use crate::wire::{
    AuditAction, BroadcastReply, JobId, JobSpec, Role, Stream, SubmitManyReply, SubmitReply, WhoAmI,
};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

pub async fn route(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<HubResponse, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return Ok(match *req.method() {
            Method::GET => respond::text(StatusCode::OK, "ok\n"),
            ref m => method_not_allowed(m),
        });
    }
    // The web interface's files hold no secret: a browser loads them before it has a token.
    if let Some(r) = web::serve(req.method(), &path, req.headers()) {
        return Ok(r);
    }
    // Without tokens, nothing but the Origin and Host checks stop a web page of another site
    // from submitting jobs through the browser of someone who can reach the hub.
    if ctx.auth.is_open() && web::cross_origin(req.headers()) {
        return Ok(respond::error(
            StatusCode::FORBIDDEN,
            "a request from a page of another origin (this hub runs with --no-auth)",
        ));
    }
    if ctx.auth.is_open() && !web::fixed_host(req.headers()) {
        return Ok(respond::error(
            StatusCode::FORBIDDEN,
            "this hub runs with --no-auth, so it answers only requests to an IP address or \
             localhost: a page elsewhere could point any other name here (DNS rebinding)",
        ));
    }
    // Nothing else is answered without a valid token, upgrades included.
    let header = web::credentials(req.headers());
    let who = match ctx.auth.check(header.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            // A slave that cannot get in is the operator's business; any other caller is told.
            if path == "/api/v1/slave" {
                tracing::warn!(peer = %super::peer::addr_of(&req), "slave refused: {e}");
            }
            let peer = req.extensions().get::<super::peer::PeerAddr>();
            let target = format!("{} {path}", req.method());
            ctx.audit.refused(peer.map(|p| p.0.ip()), &target, &e);
            return Ok(respond::unauthorized(&e.to_string()));
        }
    };
    Ok(dispatch(&ctx, req, &path, &who).await)
}

async fn dispatch(
    ctx: &Arc<Ctx>,
    req: Request<Incoming>,
    path: &str,
    who: &Arc<Principal>,
) -> HubResponse {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["api", "v1", "whoami"]) => respond::json(
            StatusCode::OK,
            &WhoAmI {
                name: who.name.clone(),
                role: who.role,
                expires_ms: who.expires_ms,
            },
        ),
        // A slave token sees no job at all: told so, not shown an empty list or a 404 that
        // reads as "no such job" (`xn -l` with the slave token by mistake).
        (&Method::GET, ["api", "v1", "jobs"]) | (_, ["api", "v1", "jobs", _, ..])
            if who.role == Role::Slave =>
        {
            forbidden(who, "see jobs (a slave token only serves as a slave)")
        }
        (&Method::GET, ["api", "v1", "jobs"]) => super::list::jobs(ctx, &req, who).await,
        (&Method::POST, ["api", "v1", "jobs"]) => submit(ctx, req, who).await,
        (&Method::POST, ["api", "v1", "broadcast"]) => broadcast(ctx, req, who).await,
        (&Method::GET, ["api", "v1", "slaves"]) => {
            respond::json(StatusCode::OK, &ctx.hub.slaves(who.role == Role::Admin))
        }
        (&Method::GET, ["api", "v1", "slave"]) => {
            if !matches!(who.role, Role::Slave | Role::Admin) {
                tracing::warn!(peer = %super::peer::addr_of(&req), token = %who.name, "slave refused: the token's role may not serve as a slave");
                return forbidden(who, "serve as a slave");
            }
            slaves::upgrade(ctx, req, who.clone())
        }
        (_, ["api", "v1", "tokens", rest @ ..]) => tokens::route(ctx, req, who, rest).await,
        (_, ["api", "v1", "audit"]) => audit::route(ctx, req, who).await,
        (m, ["api", "v1", "jobs", id, rest @ ..]) => {
            let id = match parse_id(id) {
                Err(r) => return r.into(),
                Ok(id) => id,
            };
            // Another user's job is answered as if it did not exist.
            let rec = match ctx.hub.get(id) {
                Ok(rec) if who.can_see(&rec) => rec,
                _ => return respond::job_error(JobError::NotFound(id)),
            };
            match (m, rest) {
                (&Method::GET, []) => respond::json(StatusCode::OK, &rec),
                (&Method::POST, ["cancel"]) => {
                    if !who.can_control(&rec) {
                        return forbidden(who, "cancel this job");
                    }
                    let by = Actor::of(who, super::peer::addr_of(&req));
                    match ctx
                        .hub
                        .cancel(id, &format!("cancelled by {}", who.name))
                        .await
                    {
                        Ok(now) => {
                            ctx.audit
                                .record(by.on_job(AuditAction::JobCancelled, &rec))
                                .await;
                            respond::json(StatusCode::OK, &now)
                        }
                        Err(e) => respond::job_error(e),
                    }
                }
                (&Method::DELETE, []) => {
                    if !who.can_control(&rec) {
                        return forbidden(who, "delete this job");
                    }
                    let by = Actor::of(who, super::peer::addr_of(&req));
                    match ctx.hub.delete(id).await {
                        // The record as it was, for the client to say what went.
                        Ok(()) => {
                            ctx.audit
                                .record(by.on_job(AuditAction::JobDeleted, &rec))
                                .await;
                            respond::json(StatusCode::OK, &rec)
                        }
                        Err(e) => respond::job_error(e),
                    }
                }
                (&Method::GET, ["output"]) => output(ctx, id, &req).await,
                (&Method::GET, ["stream"]) => stream::upgrade(ctx, id, req, who.clone(), &rec),
                (_, ["cancel" | "output" | "stream"] | []) => method_not_allowed(&method),
                _ => not_found(path),
            }
        }
        (_, ["api", "v1", "jobs" | "slaves" | "slave" | "broadcast" | "whoami"]) => {
            method_not_allowed(&method)
        }
        _ => not_found(path),
    }
}

/// 403 naming the token and what it may not do.
pub fn forbidden(who: &Principal, what: &str) -> HubResponse {
    respond::error(
        StatusCode::FORBIDDEN,
        format!(
            "token {} (role {}) may not {what}",
            who.name,
            who.role.as_str()
        ),
    )
}

fn not_found(path: &str) -> HubResponse {
    respond::error(StatusCode::NOT_FOUND, format!("no route {path}"))
}

fn method_not_allowed(m: &Method) -> HubResponse {
    respond::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {m} is not allowed here"),
    )
}

fn parse_id(s: &str) -> Result<JobId, Reject> {
    s.parse::<JobId>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| Reject::bad(format!("{s:?} is not a job id (a positive integer)")))
}

/// The query string as a map, `%XX` escapes decoded (a `+` stays a `+`).
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

/// Decodes `%XX` escapes; a malformed escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A numeric query parameter, or 400.
pub fn query_u64(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, Reject> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Reject::bad(format!("query parameter {key}={v:?} is not a number"))),
    }
}

/// `POST /api/v1/jobs`: one job spec, or an array of them stored in one transaction.
async fn submit(ctx: &Ctx, req: Request<Incoming>, who: &Principal) -> HubResponse {
    if !who.can_submit() {
        return forbidden(who, "submit jobs");
    }
    let body = match respond::read_body(req, MAX_SUBMIT_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r.into(),
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let specs: Vec<JobSpec> = match respond::parse_json(&body) {
            Ok(s) => s,
            Err(r) => return r.into(),
        };
        if let Err(e) = super::submit::check_fields(&body, true) {
            return respond::error(StatusCode::BAD_REQUEST, e);
        }
        return match ctx.hub.submit_many(specs, Some(who.name.clone())).await {
            Ok(recs) => {
                let ids: Vec<JobId> = recs.iter().map(|r| r.id).collect();
                tracing::info!(jobs = ids.len(), first = ids.first(), "submitted");
                respond::json(StatusCode::CREATED, &SubmitManyReply { ids })
            }
            Err(e) => respond::job_error(e),
        };
    }
    let spec: JobSpec = match respond::parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r.into(),
    };
    if let Err(e) = super::submit::check_fields(&body, false) {
        return respond::error(StatusCode::BAD_REQUEST, e);
    }
    match ctx.hub.submit(spec, Some(who.name.clone())).await {
        Ok(rec) => {
            tracing::info!(job = rec.id, "submitted");
            respond::json(StatusCode::CREATED, &SubmitReply { id: rec.id })
        }
        Err(e) => respond::job_error(e),
    }
}

/// `POST /api/v1/broadcast`: the spec once on every matching connected slave, as a group.
async fn broadcast(ctx: &Ctx, req: Request<Incoming>, who: &Principal) -> HubResponse {
    if !who.can_submit() {
        return forbidden(who, "submit jobs");
    }
    let body = match respond::read_body(req, MAX_SUBMIT_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r.into(),
    };
    let spec: JobSpec = match respond::parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r.into(),
    };
    if let Err(e) = super::submit::check_fields(&body, false) {
        return respond::error(StatusCode::BAD_REQUEST, e);
    }
    match ctx.hub.broadcast(spec, Some(who.name.clone())).await {
        Ok((group, recs)) => {
            let ids: Vec<JobId> = recs.iter().map(|r| r.id).collect();
            tracing::info!(%group, jobs = ids.len(), "broadcast submitted");
            respond::json(StatusCode::CREATED, &BroadcastReply { group, ids })
        }
        Err(e) => respond::job_error(e),
    }
}

/// `GET /api/v1/jobs/ID/output?stream=stdout|stderr&offset=N`: the bytes stored so far.
async fn output(ctx: &Ctx, id: JobId, req: &Request<Incoming>) -> HubResponse {
    let q = query(req);
    let stream = match q.get("stream").map(String::as_str) {
        None | Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(other) => {
            return respond::error(
                StatusCode::BAD_REQUEST,
                format!("unknown stream {other:?}: use stdout or stderr"),
            )
        }
    };
    let offset = match query_u64(&q, "offset") {
        Ok(o) => o.unwrap_or(0),
        Err(r) => return r.into(),
    };
    let attempt = match query_u64(&q, "attempt") {
        Ok(a) => a,
        Err(r) => return r.into(),
    };
    let sub = match ctx.hub.subscribe(id) {
        Ok(s) => s,
        Err(e) => return respond::job_error(e),
    };
    let (log, lens, attempt) = match attempt {
        Some(n) if n != u64::from(sub.rec.attempt) => {
            match sub.rec.attempts.iter().find(|a| u64::from(a.attempt) == n) {
                Some(a) => (
                    Arc::new(ctx.hub.logs.job(id, a.attempt)),
                    (a.stdout_len, a.stderr_len),
                    a.attempt,
                ),
                None => {
                    return respond::error(
                        StatusCode::NOT_FOUND,
                        format!(
                            "job {id} has no attempt {n} (attempts 1 to {})",
                            sub.rec.attempt
                        ),
                    )
                }
            }
        }
        _ => (
            sub.log,
            (sub.rec.stdout_len, sub.rec.stderr_len),
            sub.rec.attempt,
        ),
    };
    let len = match stream {
        Stream::Stderr => lens.1,
        _ => lens.0,
    };
    // A file removed or cut short outside the hub (a restore that missed it, a full disk's
    // cleanup) would end the body early, which clients can only report as a broken answer.
    if offset < len {
        let on_disk = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || log.file_len(stream))
                .await
                .unwrap_or(len)
        };
        if on_disk < len {
            let file = log.path(stream).display().to_string();
            tracing::error!(
                job = id,
                attempt,
                "output log {file} has {on_disk} of the {len} bytes recorded: removed or cut short outside the hub"
            );
            return respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "job {id}'s {} (attempt {attempt}) is lost: its log file holds {on_disk} of \
                     the {len} bytes stored, so it was removed or cut short outside the hub; \
                     restore DATA/logs from a backup, or delete the job (xn --rm {id})",
                    if stream == Stream::Stderr {
                        "stderr"
                    } else {
                        "stdout"
                    }
                ),
            );
        }
    }
    let body = LogBody::new(log, stream, offset, len);
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header("X-Job-State", sub.rec.state.as_str())
        .body(body.boxed())
        .expect("static headers are valid")
}
