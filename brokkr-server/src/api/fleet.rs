//! The fleet overview (`/admin/overview`): agents by status, stacks by health, for
//! the dashboard's first page. Counted by the store, so it costs the same for ten
//! agents or ten thousand.

use brokkr_core::{FleetCounts, HealthStatus};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::Tag;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::state::AppState;

/// Live agents by the status they show.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "AgentCounts")]
pub struct AgentCountsDto {
    /// Every live agent.
    pub total: u64,
    /// Enabled, with a written heartbeat within `agents.stale_after_secs`.
    pub active: u64,
    /// Enabled, with an older heartbeat or none.
    pub stale: u64,
    /// Disabled by an admin.
    pub inactive: u64,
}

/// Live stacks by the worst status of the agents' latest health reports on them.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "StackCounts")]
pub struct StackCountsDto {
    /// Every live stack.
    pub total: u64,
    /// Every report healthy.
    pub healthy: u64,
    /// The worst report progressing.
    pub progressing: u64,
    /// The worst report degraded.
    pub degraded: u64,
    /// At least one report failed.
    pub failed: u64,
    /// No agent reported on it.
    pub unreported: u64,
}

/// The fleet at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "FleetOverview")]
pub struct FleetOverviewDto {
    /// Agents by status.
    pub agents: AgentCountsDto,
    /// Stacks by health.
    pub stacks: StackCountsDto,
}

impl From<FleetCounts> for FleetOverviewDto {
    fn from(c: FleetCounts) -> Self {
        Self {
            agents: AgentCountsDto {
                total: c.agents_active + c.agents_stale + c.agents_inactive,
                active: c.agents_active,
                stale: c.agents_stale,
                inactive: c.agents_inactive,
            },
            stacks: StackCountsDto {
                total: c.stacks,
                healthy: c.stacks_with(HealthStatus::Healthy),
                progressing: c.stacks_with(HealthStatus::Progressing),
                degraded: c.stacks_with(HealthStatus::Degraded),
                failed: c.stacks_with(HealthStatus::Failed),
                unreported: c.stacks_unreported(),
            },
        }
    }
}

/// Answer of `GET /admin/overview`.
#[derive(Debug, ApiResponse)]
pub enum FleetOverviewResponse {
    /// The counts.
    #[oai(status = 200)]
    Ok(Json<FleetOverviewDto>),
}

/// The fleet overview.
pub struct FleetApi;

#[OpenApi]
impl FleetApi {
    /// Agents by status and stacks by health (admin).
    ///
    /// An agent counts as active from its first heartbeat written (within
    /// `agents.heartbeat_flush_millis`); a stack's health is the worst status of the
    /// latest report of each agent on it.
    #[oai(
        path = "/admin/overview",
        method = "get",
        operation_id = "getFleetOverview",
        tag = "Tag::Admin"
    )]
    async fn fleet_overview(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
    ) -> ApiResult<FleetOverviewResponse> {
        let counts = state.control_plane.fleet_overview(&auth.0).await?;
        Ok(FleetOverviewResponse::Ok(Json(counts.into())))
    }
}
