//! A raw YAML request body, so `curl --data-binary @app.yaml -H 'Content-Type:
//! application/yaml'` can append a deployment object without wrapping it in JSON.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::MetaSchemaRef;
use poem_openapi::types::Type;

/// Multi-document Kubernetes YAML as the whole body. Served as `application/yaml`
/// (RFC 9512); `application/x-yaml`, `text/yaml` and `text/x-yaml`, which older tools
/// send, are accepted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlText(pub String);

/// The media types read as YAML, the registered one first.
pub const YAML_MEDIA_TYPES: &[&str] = &[
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

impl Payload for YamlText {
    const CONTENT_TYPE: &'static str = "application/yaml";

    fn check_content_type(content_type: &str) -> bool {
        // Parameters such as `; charset=utf-8` do not change the media type.
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        YAML_MEDIA_TYPES
            .iter()
            .any(|yaml| essence.eq_ignore_ascii_case(yaml))
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }
}

impl ParsePayload for YamlText {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        // Text that is not UTF-8 is refused here, as poem refuses it for any string.
        Ok(Self(String::from_request(request, body).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_media_types_are_recognised_with_or_without_parameters() {
        for accepted in [
            "application/yaml",
            "application/x-yaml; charset=utf-8",
            "text/yaml",
            "Text/X-YAML",
        ] {
            assert!(YamlText::check_content_type(accepted), "{accepted}");
        }
        for refused in ["application/json", "text/plain", "application/yaml-patch"] {
            assert!(!YamlText::check_content_type(refused), "{refused}");
        }
    }
}
