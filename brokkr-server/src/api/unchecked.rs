//! [`Unchecked<T>`]: a JSON body documented as `T` but parsed by its handler, so that a
//! body that is JSON but not a `T` (an unknown `change`, a missing field) is a 422
//! naming what is wrong, like the control plane's own validation, rather than the
//! 400 `invalid_body` of a malformed request.

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ParseResult, Type};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// A JSON value with `T`'s schema in the OpenAPI document; [`Unchecked::parse`] makes
/// it a `T`.
#[derive(Debug, Clone)]
pub struct Unchecked<T> {
    value: Value,
    of: PhantomData<fn() -> T>,
}

impl<T: ParseFromJSON> Unchecked<T> {
    /// The `T` the body holds, or 422 `code` with the parser's reason.
    pub fn parse(self, code: &str, what: &str) -> ApiResult<T> {
        T::parse_from_json(Some(self.value)).map_err(|err| {
            ApiError::unprocessable(
                code,
                format!("invalid {what}: {}", err.into_message()),
                None,
            )
        })
    }
}

impl<T: Type> Type for Unchecked<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Value> {
        Some(&self.value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(std::iter::once(&self.value))
    }
}

impl<T: Type> ParseFromJSON for Unchecked<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Ok(Self {
            value: value.unwrap_or_default(),
            of: PhantomData,
        })
    }
}
