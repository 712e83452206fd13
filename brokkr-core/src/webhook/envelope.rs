//! The body of every delivery: the event in a fixed JSON envelope.

use serde::Serialize;

use crate::model::WebhookEvent;

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a crate::id::WebhookEventId,
    #[serde(rename = "type")]
    event_type: &'a str,
    occurred_at: &'a chrono::DateTime<chrono::Utc>,
    stack_id: &'a Option<crate::id::StackId>,
    agent_id: &'a Option<crate::id::AgentId>,
    data: &'a serde_json::Value,
}

/// `{"id", "type", "occurred_at", "stack_id", "agent_id", "data"}` for `event`: the
/// same bytes for every delivery of it (the event id, not the delivery's, is `id`;
/// the delivery id travels in `X-Brokkr-Delivery`).
pub fn envelope(event: &WebhookEvent) -> Vec<u8> {
    let envelope = Envelope {
        id: &event.id,
        event_type: event.event_type.as_str(),
        occurred_at: &event.occurred_at,
        stack_id: &event.stack_id,
        agent_id: &event.agent_id,
        data: &event.data,
    };
    serde_json::to_vec(&envelope).expect("an envelope of JSON values and ids serialises")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::id::{StackId, WebhookEventId};
    use crate::model::WebhookEventType;

    #[test]
    fn the_envelope_has_the_documented_fields_and_nothing_else() {
        let event = WebhookEvent {
            id: WebhookEventId::from(uuid::Uuid::nil()),
            event_type: WebhookEventType::DeploymentObjectCreated,
            stack_id: Some(StackId::from(uuid::Uuid::from_u128(1))),
            agent_id: None,
            occurred_at: chrono::Utc.with_ymd_and_hms(2026, 12, 7, 1, 2, 3).unwrap(),
            data: json!({"sequence": 4}),
        };
        let body: serde_json::Value = serde_json::from_slice(&envelope(&event)).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "type": "deployment_object.created",
                "occurred_at": "2026-12-07T01:02:03Z",
                "stack_id": "00000000-0000-0000-0000-000000000001",
                "agent_id": null,
                "data": {"sequence": 4},
            })
        );
        assert_eq!(envelope(&event), envelope(&event.clone()), "stable bytes");
    }
}
