//! `?wait=` of a target-state fetch: seconds, with the ceiling every configuration
//! shares stated in the OpenAPI document.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};

use crate::config::MAX_LONG_POLL_SECS;

/// Seconds a target-state fetch may wait for a change. The OpenAPI document states
/// 0 to [`MAX_LONG_POLL_SECS`], the most `agents.long_poll_max_secs` may be set to,
/// and parsing refuses more; the handler holds the value to the configured bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSecs(pub u64);

impl Type for WaitSecs {
    const IS_REQUIRED: bool = true;
    type RawValueType = u64;
    type RawElementValueType = u64;

    fn name() -> Cow<'static, str> {
        "integer(wait_secs)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            minimum: Some(0.0),
            maximum: Some(MAX_LONG_POLL_SECS as f64),
            ..MetaSchema::new_with_format("integer", "uint64")
        }))
    }

    fn as_raw_value(&self) -> Option<&u64> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a u64> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromParameter for WaitSecs {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let secs: u64 = value.parse().map_err(ParseError::custom)?;
        if secs > MAX_LONG_POLL_SECS {
            return Err(ParseError::custom(format!(
                "wait is at most {MAX_LONG_POLL_SECS} seconds on any server"
            )));
        }
        Ok(Self(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_and_the_parser_share_the_ceiling() {
        let MetaSchemaRef::Inline(schema) = WaitSecs::schema_ref() else {
            panic!("an inline schema");
        };
        assert_eq!(schema.minimum, Some(0.0));
        assert_eq!(schema.maximum, Some(MAX_LONG_POLL_SECS as f64));
        let ceiling = MAX_LONG_POLL_SECS.to_string();
        assert_eq!(
            WaitSecs::parse_from_parameter(&ceiling).ok(),
            Some(WaitSecs(MAX_LONG_POLL_SECS))
        );
        let above = (MAX_LONG_POLL_SECS + 1).to_string();
        assert!(WaitSecs::parse_from_parameter(&above).is_err());
        assert!(WaitSecs::parse_from_parameter("-1").is_err());
        assert!(WaitSecs::parse_from_parameter("soon").is_err());
    }
}
