//! `/api/v1/tokens`: admins create, list and revoke tokens over REST (the same as
//! `xnhub token ...` on the hub's machine).

use super::age::parse_age;
use super::audit::Actor;
use super::auth::Principal;
use super::respond::{self, HubResponse};
use super::routes::forbidden;
use super::Ctx;
use crate::limits::MAX_REST_BODY_BYTES;
use crate::wire::{CreateToken, NewToken, Role};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

pub async fn route(
    ctx: &Ctx,
    req: Request<Incoming>,
    who: &Principal,
    rest: &[&str],
) -> HubResponse {
    if who.role != Role::Admin {
        return forbidden(who, "manage tokens");
    }
    let auth = ctx.auth.clone();
    let by = Actor::of(who, super::peer::addr_of(&req));
    match (req.method().clone(), rest) {
        (Method::GET, []) => {
            blocking(
                move || auth.list(),
                |list| respond::json(StatusCode::OK, &list),
            )
            .await
        }
        (Method::POST, []) => {
            let body = match respond::read_body(req, MAX_REST_BODY_BYTES).await {
                Ok(b) => b,
                Err(r) => return r.into(),
            };
            let want: CreateToken = match respond::parse_json(&body) {
                Ok(w) => w,
                Err(r) => return r.into(),
            };
            let lifetime = match want.expires_in.as_deref().map(parse_age).transpose() {
                Ok(l) => l,
                Err(e) => {
                    return respond::error(StatusCode::BAD_REQUEST, format!("expires_in: {e}"))
                }
            };
            blocking(
                move || {
                    let slave = want.slave_name.as_deref();
                    auth.create(&want.name, want.role, slave, lifetime, &by)
                },
                |made: NewToken| respond::json(StatusCode::CREATED, &made),
            )
            .await
        }
        (Method::DELETE, [name]) => {
            let name = name.to_string();
            let shown = name.clone();
            blocking(
                move || auth.revoke(&name, &by),
                move |found| {
                    if found {
                        respond::json(StatusCode::OK, &serde_json::json!({ "revoked": shown }))
                    } else {
                        respond::error(StatusCode::NOT_FOUND, format!("no token named {shown:?}"))
                    }
                },
            )
            .await
        }
        _ => respond::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET or POST /api/v1/tokens, DELETE /api/v1/tokens/NAME",
        ),
    }
}

/// Runs a token-table call off the runtime; its error is a 400 with the message.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ok: impl FnOnce(T) -> HubResponse,
) -> HubResponse {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => ok(v),
        Ok(Err(e)) => respond::error(StatusCode::BAD_REQUEST, format!("{e:#}")),
        Err(e) => respond::error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")),
    }
}
