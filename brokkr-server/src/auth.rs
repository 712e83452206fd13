//! Who is calling: `Authorization: Bearer <key>` resolved to the [`Actor`] it belongs to.
//!
//! The control plane resolves the key ([`ControlPlane::authenticate`]: a bounded
//! cache, constant-time verification); this module only maps the answer to the
//! security scheme the OpenAPI document declares.
//!
//! [`ControlPlane::authenticate`]: brokkr_core::runtime::ControlPlane::authenticate

use brokkr_core::Actor;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::ApiError;
use crate::state::AppState;

/// `Authorization: Bearer brokkr_<short id>_<secret>`.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "brokkr_<short id>_<secret>",
    checker = "authenticate"
)]
pub struct BearerAuth(pub Actor);

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Actor> {
    let state = req
        .data::<AppState>()
        .expect("app() attaches AppState to every request");
    match state.control_plane.authenticate(&bearer.token).await {
        // Keys belong to admins, agents and generators; `System` is Brokkr's own code.
        Ok(Actor::System) => Err(ApiError::unauthorized("no key belongs to the system").into()),
        Ok(actor) => Ok(actor),
        Err(err) => Err(ApiError::from(err).into()),
    }
}
