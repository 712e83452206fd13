//! The template generator: a minijinja template plus a JSON Schema for its parameters.
//!
//! Instantiating a template (1) fills in schema defaults and validates the parameters,
//! reporting every violation by JSON pointer; (2) renders with strict undefined
//! variables inside fuel, recursion and output-size limits; (3) parses the output with
//! the core manifest parser. Nothing here stores anything.
//!
//! The template sees `params` (the prepared parameters), `stack` (`id`, `name`,
//! `labels`, `annotations`) and `template` (`id`, `name`, `version`). Rendering is
//! deterministic: no clock, no randomness, parameters with sorted keys. Besides
//! minijinja's built-in filters it offers `b64encode`, `b64decode`, `sha256`,
//! `dns_label` and the `fail(message)` function.

use std::io::{self, Write};

use base64::Engine as _;
use minijinja::{
    Environment, ErrorKind, UndefinedBehavior, Value as JinjaValue, syntax::SyntaxConfig,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::generator::{self, GenerateRequest, Generated, Generator};
use crate::id::TemplateId;
use crate::model::TemplateVersion;
use crate::schema::{ParameterSchema, SchemaError};

/// How much work one rendering may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Instructions one rendering may execute; a template that loops too long stops
    /// with a clear error. Default: 1,000,000 (a loop over 10,000 items fits).
    pub fuel: u64,
    /// Deepest nesting of macro calls, includes and recursive loops. Default: 64
    /// (minijinja caps it at 500).
    pub recursion: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            fuel: 1_000_000,
            recursion: 64,
        }
    }
}

/// Why a template cannot be stored or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The minijinja source does not compile.
    #[error("template syntax error: {0}")]
    Syntax(String),
    /// The parameters schema is not a usable JSON Schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// Checks what a template version must satisfy before it is stored: the source
/// compiles and the schema compiles.
pub fn check(content: &str, parameters_schema: &Value) -> Result<(), TemplateError> {
    ParameterSchema::compile(parameters_schema)?;
    let env = environment(TemplateLimits::default());
    env.template_from_named_str(SOURCE_NAME, content)
        .map_err(|e| TemplateError::Syntax(describe(&e)))?;
    Ok(())
}

/// The name errors use for the template's source.
const SOURCE_NAME: &str = "template";

/// One template version, ready to render many times.
#[derive(Debug)]
pub struct TemplateGenerator {
    name: String,
    template_id: TemplateId,
    version: i32,
    source: String,
    schema: ParameterSchema,
    limits: TemplateLimits,
}

impl TemplateGenerator {
    /// Prepares version `version` of the template called `name`. Fails if its source
    /// or schema does not compile (which a stored version never does).
    pub fn new(
        name: impl Into<String>,
        version: &TemplateVersion,
        limits: TemplateLimits,
    ) -> Result<Self, TemplateError> {
        check(&version.content, &version.parameters_schema)?;
        Ok(Self {
            name: name.into(),
            template_id: version.template_id,
            version: version.version,
            source: version.content.clone(),
            schema: ParameterSchema::compile(&version.parameters_schema)?,
            limits,
        })
    }

    /// The template's id.
    pub fn template_id(&self) -> TemplateId {
        self.template_id
    }

    /// The version it renders.
    pub fn version(&self) -> i32 {
        self.version
    }

    fn render(&self, request: &GenerateRequest<'_>, params: &Value) -> generator::Result<String> {
        let env = environment(self.limits);
        let template = env
            .template_from_named_str(SOURCE_NAME, &self.source)
            .map_err(|e| generator::Error::RenderFailed(describe(&e)))?;
        let stack = request.stack;
        let context = json!({
            "params": params,
            "stack": {
                "id": stack.id.to_string(),
                "name": stack.name,
                "labels": stack.labels,
                "annotations": stack.annotations,
            },
            "template": {
                "id": self.template_id.to_string(),
                "name": self.name,
                "version": self.version,
            },
        });
        let mut out = CappedWriter::new(request.limits.max_bytes);
        let rendered = template.render_captured_to(
            JinjaValue::from(minijinja::value::Serde(&context)),
            &mut out,
        );
        if out.exceeded {
            return Err(generator::Error::RenderFailed(format!(
                "rendered output exceeds the limit of {} bytes",
                request.limits.max_bytes
            )));
        }
        rendered.map_err(|e| generator::Error::RenderFailed(self.explain(&e)))?;
        String::from_utf8(out.buffer)
            .map_err(|_| generator::Error::RenderFailed("rendered output is not UTF-8".into()))
    }

    fn explain(&self, error: &minijinja::Error) -> String {
        match error.kind() {
            ErrorKind::OutOfFuel => format!(
                "the template ran out of fuel after {} instructions (an unbounded loop?){}",
                self.limits.fuel,
                at_line(error)
            ),
            _ => describe(error),
        }
    }
}

impl Generator for TemplateGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        "minijinja template"
    }

    fn parameters_schema(&self) -> Value {
        self.schema.as_value().clone()
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> generator::Result<Generated> {
        let params = self
            .schema
            .prepare(request.parameters)
            .map_err(generator::Error::InvalidParameters)?;
        let yaml = self.render(request, &params)?;
        Generated::from_yaml(yaml, params, request.limits)
    }
}

/// The environment every template renders in: strict undefined, no HTML escaping
/// (the output is YAML), block tags that leave no blank lines, and the limits.
fn environment(limits: TemplateLimits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug mode (off by default in release builds) makes minijinja remember where an
    // undefined value came from, so the error names it: "`params.missing` is
    // undefined". It also keeps the source on the error, for `undefined_name`.
    env.set_debug(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion);
    // Built-in syntax with only whitespace options changed cannot fail to build.
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("b64encode", |s: String| {
        base64::engine::general_purpose::STANDARD.encode(s)
    });
    env.add_filter(
        "b64decode",
        |s: String| -> Result<String, minijinja::Error> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| invalid(format!("b64decode: {e}")))?;
            String::from_utf8(bytes).map_err(|_| invalid("b64decode: the data is not UTF-8"))
        },
    );
    env.add_filter("sha256", |s: String| hex(&Sha256::digest(s.as_bytes())));
    env.add_filter("dns_label", |s: String| dns_label(&s));
    env.add_function(
        "fail",
        |message: String| -> Result<String, minijinja::Error> { Err(invalid(message)) },
    );
    env
}

fn invalid(message: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-cases, maps every other character to `-`, trims `-` at both ends and cuts to
/// 63 characters: a valid RFC 1123 label for any input that has a letter or digit.
fn dns_label(input: &str) -> String {
    let mapped: String = input
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    trimmed
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// "what went wrong (line N)" from a minijinja error, without its debug dump.
fn describe(error: &minijinja::Error) -> String {
    let kind = error.kind();
    let detail = match error.detail() {
        Some(detail) => Some(detail.to_owned()),
        None if kind == ErrorKind::UndefinedError => {
            undefined_name(error).map(|name| format!("`{name}` is undefined"))
        }
        None => None,
    };
    let prefix = match kind {
        ErrorKind::UndefinedError => "undefined value",
        ErrorKind::SyntaxError => "syntax error",
        ErrorKind::UnknownFilter => "unknown filter",
        ErrorKind::UnknownFunction => "unknown function",
        ErrorKind::UnknownTest => "unknown test",
        _ => "",
    };
    let text = match detail {
        None => kind.to_string(),
        Some(detail) if prefix.is_empty() => detail,
        Some(detail) => format!("{prefix}: {detail}"),
    };
    format!("{text}{}", at_line(error))
}

/// The expression an undefined error points at, read from the template source at the
/// error's range. minijinja names the undefined value itself when it can trace where
/// it came from; this covers the errors where it cannot.
fn undefined_name(error: &minijinja::Error) -> Option<&str> {
    expression_at(error.template_source()?, error.range()?)
}

/// The source text in `range`, trimmed. A range that covers only the attribute part of
/// a path (`.a.b` of `params.a.b`) is widened to the whole path.
fn expression_at(source: &str, range: std::ops::Range<usize>) -> Option<&str> {
    let is_path = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let mut start = range.start;
    if source.get(range.clone())?.starts_with('.') {
        start = source[..range.start]
            .char_indices()
            .rev()
            .find(|&(_, c)| !is_path(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
    }
    let expression = source.get(start..range.end)?.trim();
    (!expression.is_empty()).then_some(expression)
}

fn at_line(error: &minijinja::Error) -> String {
    error
        .line()
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default()
}

/// Collects output up to a byte limit; the first write past it fails, which stops
/// rendering at once.
struct CappedWriter {
    buffer: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl CappedWriter {
    fn new(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            limit,
            exceeded: false,
        }
    }
}

impl Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.buffer.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
