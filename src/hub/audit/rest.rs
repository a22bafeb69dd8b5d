//! `GET /api/v1/audit?limit=N&before=ID`: the audit log's newest rows, newest first, for
//! admins only. Read on a connection of its own, off the runtime.

use super::super::auth::Principal;
use super::super::respond::{self, HubResponse};
use super::super::routes::{forbidden, query, query_u64};
use super::super::Ctx;
use crate::wire::Role;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

/// Rows answered when the request does not say.
pub const DEFAULT_LIMIT: u64 = 100;

/// Most rows one answer holds (a bigger `limit` is cut to it): older ones are read with
/// `before=ID`, the smallest id of the answer before.
pub const MAX_LIMIT: u64 = 100_000;

pub async fn route(ctx: &Ctx, req: Request<Incoming>, who: &Principal) -> HubResponse {
    if who.role != Role::Admin {
        return forbidden(who, "read the audit log");
    }
    if req.method() != Method::GET {
        return respond::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} is not allowed here: use GET", req.method()),
        );
    }
    let q = query(&req);
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "limit" | "before")) {
        return respond::error(
            StatusCode::BAD_REQUEST,
            format!("unknown query parameter {k:?}: the audit log takes limit=N and before=ID"),
        );
    }
    let (limit, before) = match (query_u64(&q, "limit"), query_u64(&q, "before")) {
        (Ok(l), Ok(b)) => (l.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT), b),
        (Err(r), _) | (_, Err(r)) => return r.into(),
    };
    // What was recorded before this request (refusals are queued, not awaited) is in it.
    if let Err(e) = ctx.hub.store.sync().await {
        return respond::error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"));
    }
    let data = ctx.hub.store.dir.clone();
    let read = tokio::task::spawn_blocking(move || match super::open_to_read(&data)? {
        Some(conn) => super::read(&conn, limit, before),
        None => Ok(Vec::new()),
    });
    match read.await {
        Ok(Ok(rows)) => respond::json(StatusCode::OK, &rows),
        Ok(Err(e)) => respond::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the audit log: {e:#}"),
        ),
        Err(e) => respond::error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")),
    }
}
