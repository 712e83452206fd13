//! Kubernetes manifests: the validated [`Manifest`] type and the multi-document YAML
//! parser that produces it.
//!
//! [`parse`] turns the YAML of a deployment object into manifests, enforcing size and
//! document limits, rejecting duplicates and expanding `kind: List` documents. Nothing
//! here talks to a cluster: whether a kind exists or a field is valid for it is the
//! agent's dry run's business.
//!
//! # YAML dialect
//!
//! Kubernetes tooling is a mix of YAML 1.1 (`kubectl`'s go-yaml) and JSON. Brokkr reads
//! YAML 1.2 core-schema scalars, so that a value never silently changes type:
//!
//! - only `true`/`True`/`TRUE` and `false`/`False`/`FALSE` are booleans; unquoted `yes`,
//!   `no`, `on`, `off`, `y` and `n` stay strings;
//! - integers with a redundant leading zero (`0755`, `007`) stay strings, spelling
//!   intact. YAML 1.2 would read `0755` as decimal 755 and `kubectl` as octal 493; a
//!   file mode silently off by that difference is worse than a type error at dry run.
//!   Write modes as `0o755` (octal, 493) or in decimal;
//! - `1_000` stays a string (underscores in numbers are YAML 1.1 only);
//! - `.nan` and `.inf` are rejected (JSON cannot hold them), as are duplicate keys and
//!   unknown tags such as `!foo`; merge keys (`<<: *defaults`) are expanded.
//!
//! Aliases are expanded under tight budgets, so an alias bomb fails fast instead of
//! exhausting memory.

mod check;
mod key;

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use self::check::{check_api_version, check_kind, check_name, invalid, required_str, type_name};
pub use self::key::{ObjectKey, collapse_versions};

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Deepest accepted nesting of mappings and sequences. Deeper than serde-saphyr's
/// default of 64 because CRD schemas nest two levels per property.
const MAX_DEPTH: usize = 128;

/// Most events that alias expansion (merge keys `<<` included) may replay over one
/// input. Real manifests use aliases sparingly (a few labels or an env block, tens of
/// events each). A replayed event costs far more than a parsed one when merges chain:
/// a 1.6 KB chain of merge keys reached 100,000 replayed events in 0.49 s of CPU, so
/// this bound keeps the worst small input to about 50 ms.
const MAX_REPLAYED_EVENTS: usize = 10_000;

/// Where in the input an object came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// 0-based index of the YAML document in the input, counting empty documents.
    pub document: usize,
    /// 0-based index in the document's `items` when the document is an expanded `List`.
    pub item: Option<usize>,
}

impl Position {
    fn document(document: usize) -> Self {
        Self {
            document,
            item: None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            None => write!(f, "document {}", self.document),
            Some(item) => write!(f, "document {} item {}", self.document, item),
        }
    }
}

/// Why a YAML input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is larger than [`ParseOptions::max_bytes`]; it was not parsed.
    #[error("input is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The input has more documents, or yields more objects, than
    /// [`ParseOptions::max_documents`].
    #[error("input has more than {limit} documents or objects")]
    TooManyDocuments {
        /// The limit.
        limit: usize,
    },
    /// The input is not valid YAML, cannot be represented as JSON, or exceeds a parsing
    /// budget (nesting depth, alias expansion).
    #[error("invalid yaml{}: {message}", DocumentSuffix(*.document))]
    InvalidYaml {
        /// The document the error was found in, when known.
        document: Option<usize>,
        /// What the YAML parser reported, with line and column.
        message: String,
    },
    /// The input holds no object: it is empty or only comments and empty documents.
    #[error("input contains no kubernetes object")]
    Empty,
    /// A document or list item is not a mapping.
    #[error("{at}: not a mapping")]
    NotAMapping {
        /// Where.
        at: Position,
    },
    /// A required field is absent or null.
    #[error("{at}: missing field {field}")]
    MissingField {
        /// Where.
        at: Position,
        /// `apiVersion`, `kind`, `metadata` or `metadata.name`.
        field: &'static str,
    },
    /// A field is present but has the wrong type or syntax.
    #[error("{at}: invalid field {field}: {reason}")]
    InvalidField {
        /// Where.
        at: Position,
        /// The field's path, such as `metadata.namespace`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The same object appears twice in one input.
    #[error("{key} appears twice, at {first} and {second}")]
    Duplicate {
        /// Where the object first appeared.
        first: Position,
        /// Where it appeared again.
        second: Position,
        /// The object's identity (boxed to keep the error small).
        key: Box<ObjectKey>,
    },
    /// A `List` document is malformed.
    #[error("document {document}: invalid list: {reason}")]
    InvalidList {
        /// The list's document.
        document: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A `List` document was found while [`ParseOptions::expand_lists`] is off.
    #[error("document {document}: is a list, and lists are not accepted here")]
    ListNotAllowed {
        /// The list's document.
        document: usize,
    },
}

impl Error {
    /// The (0-based) document the error is about, when it is about one; for a
    /// duplicate, the document where the object appeared again.
    pub fn document(&self) -> Option<usize> {
        match self {
            Self::InvalidYaml { document, .. } => *document,
            Self::NotAMapping { at }
            | Self::MissingField { at, .. }
            | Self::InvalidField { at, .. } => Some(at.document),
            Self::Duplicate { second, .. } => Some(second.document),
            Self::InvalidList { document, .. } | Self::ListNotAllowed { document } => {
                Some(*document)
            }
            Self::TooLarge { .. } | Self::TooManyDocuments { .. } | Self::Empty => None,
        }
    }
}

/// Formats `" in document N"` when the document is known.
struct DocumentSuffix(Option<usize>);

impl fmt::Display for DocumentSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(document) => write!(f, " in document {document}"),
            None => Ok(()),
        }
    }
}

/// A validated Kubernetes object.
///
/// A [`serde_json::Value`] whose `apiVersion` (`v1` or `group/version`), `kind`,
/// `metadata.name` and, if present, `metadata.namespace` are known to be well-formed
/// strings. It cannot be changed in place, so the accessors cannot fail; to change it,
/// take the value out with [`Manifest::into_value`] and validate it again with
/// [`Manifest::from_value`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Manifest {
    value: Value,
}

impl Manifest {
    /// Validates `value` as one document of a YAML input would be.
    ///
    /// A `List` is rejected ([`Error::ListNotAllowed`]): it is several objects, not one.
    /// Errors name document 0.
    pub fn from_value(value: Value) -> Result<Manifest> {
        let at = Position::document(0);
        let head = check_head(&value, at)?;
        if head.is_list {
            return Err(Error::ListNotAllowed { document: 0 });
        }
        check_metadata(&value, at)?;
        Ok(Manifest { value })
    }

    /// `apiVersion`: `v1` or `group/version`.
    pub fn api_version(&self) -> &str {
        self.str_field("apiVersion")
    }

    /// `kind`, such as `Deployment`.
    pub fn kind(&self) -> &str {
        self.str_field("kind")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata_str("name").unwrap_or_default()
    }

    /// `metadata.namespace`, if set. Cluster-scoped objects and namespaced objects that
    /// rely on a default namespace have none.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata_str("namespace")
    }

    /// The API group: `""` for the core group (`v1`), `apps` for `apps/v1`.
    pub fn group(&self) -> &str {
        match self.api_version().split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// The API version without its group: `v1` for both `v1` and `apps/v1`.
    pub fn version(&self) -> &str {
        let api_version = self.api_version();
        match api_version.split_once('/') {
            Some((_, version)) => version,
            None => api_version,
        }
    }

    /// The whole object.
    pub fn as_value(&self) -> &Value {
        &self.value
    }

    /// The whole object, taken out of the wrapper.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The object's identity (group, kind, namespace and name) and the `apiVersion` to
    /// address it with; see [`ObjectKey`].
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            api_version: self.api_version().to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }

    // The fallbacks below are unreachable: construction validated these fields and
    // the value cannot be changed afterwards. They avoid a panic path all the same.
    fn str_field(&self, field: &str) -> &str {
        self.value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn metadata_str(&self, field: &str) -> Option<&str> {
        self.value.get("metadata")?.get(field)?.as_str()
    }
}

/// Limits and behaviour of [`parse_with`].
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Largest accepted input in bytes, checked before parsing. Default: 8 MiB.
    pub max_bytes: usize,
    /// Most YAML documents (empty ones included) in one input, and most objects it may
    /// yield once lists are expanded. Default: 10,000.
    pub max_documents: usize,
    /// Whether a `List` document is replaced by its items (default) or rejected.
    pub expand_lists: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024,
            max_documents: 10_000,
            expand_lists: true,
        }
    }
}

/// Parses multi-document YAML into validated manifests with the default
/// [`ParseOptions`].
pub fn parse(yaml: &str) -> Result<Vec<Manifest>> {
    parse_with(yaml, &ParseOptions::default())
}

/// Parses multi-document YAML into validated manifests, in input order.
///
/// Empty documents are skipped; every other document must be a Kubernetes object or,
/// when [`ParseOptions::expand_lists`] is on, a `List` whose items are objects. The
/// same object (see [`ObjectKey`]) may appear only once, and the input must hold at
/// least one object. See the [module documentation](self) for the YAML dialect.
pub fn parse_with(yaml: &str, options: &ParseOptions) -> Result<Vec<Manifest>> {
    if yaml.len() > options.max_bytes {
        return Err(Error::TooLarge {
            size: yaml.len(),
            limit: options.max_bytes,
        });
    }
    let starts = DocumentStarts::scan(yaml, options.max_documents)?;
    let documents: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(yaml, yaml_options(options)).map_err(|e| {
            Error::InvalidYaml {
                // A partial scan still covers every document before the error.
                document: e.location().map(|l| starts.document_at(l.line())),
                message: e.without_snippet().to_string(),
            }
        })?;

    let mut manifests = Vec::with_capacity(documents.len());
    let mut seen: HashMap<ObjectKey, Position> = HashMap::with_capacity(documents.len());
    let mut add = |manifest: Manifest, at: Position| -> Result<()> {
        if manifests.len() >= options.max_documents {
            return Err(Error::TooManyDocuments {
                limit: options.max_documents,
            });
        }
        let key = manifest.key();
        if let Some(&first) = seen.get(&key) {
            return Err(Error::Duplicate {
                first,
                second: at,
                key: Box::new(key),
            });
        }
        seen.insert(key, at);
        manifests.push(manifest);
        Ok(())
    };

    for (ordinal, document) in documents.into_iter().enumerate() {
        // Should the scan have stopped where the deserializer did not, fall back to
        // counting the documents the deserializer returned, which skips empty ones.
        let index = if starts.complete {
            starts.document_at(document.referenced.line())
        } else {
            ordinal
        };
        let at = Position::document(index);
        let value = document.value;
        let head = check_head(&value, at)?;
        if !head.is_list {
            check_metadata(&value, at)?;
            add(Manifest { value }, at)?;
            continue;
        }
        if !options.expand_lists {
            return Err(Error::ListNotAllowed { document: index });
        }
        for (item, value) in list_items(value, index)?.into_iter().enumerate() {
            let at = Position {
                document: index,
                item: Some(item),
            };
            if check_head(&value, at)?.is_list {
                return Err(Error::InvalidList {
                    document: index,
                    reason: format!("item {item} is itself a list"),
                });
            }
            check_metadata(&value, at)?;
            add(Manifest { value }, at)?;
        }
    }

    if manifests.is_empty() {
        return Err(Error::Empty);
    }
    Ok(manifests)
}

/// The serde-saphyr options that implement the dialect described in the module docs.
fn yaml_options(options: &ParseOptions) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    // Without aliases, an input of N bytes yields fewer than N events, nodes and scalar
    // bytes, so these limits only bite on alias expansion; never go below the defaults.
    let per_byte = options.max_bytes.saturating_add(64);
    budget.max_events = budget.max_events.max(per_byte);
    budget.max_nodes = budget.max_nodes.max(per_byte);
    budget.max_total_scalar_bytes = options.max_bytes.saturating_mul(2);
    budget.max_documents = options.max_documents;
    budget.max_depth = MAX_DEPTH;

    let mut yaml = serde_saphyr::Options::default();
    yaml.budget = Some(budget);
    yaml.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    yaml.strict_booleans = true;
    yaml.legacy_octal_numbers = false;
    yaml.leading_zero_numbers_as_strings = true;
    yaml.underscored_numbers_as_strings = true;
    yaml.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::Reject;
    yaml.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    yaml.merge_keys = serde_saphyr::MergeKeyPolicy::Merge;
    yaml.reject_unsupported_tags = true;
    yaml.emit_comments = false;
    yaml.with_snippet = false;
    yaml
}

/// Where the documents of an input start.
struct DocumentStarts {
    /// The 1-based line of every document start, in order, empty documents included.
    lines: Vec<usize>,
    /// False when the scan stopped at a syntax error: `lines` then covers only the
    /// documents before it.
    complete: bool,
}

impl DocumentStarts {
    /// Scans `yaml` for document starts, so that errors can name documents as a reader
    /// counts them (serde-saphyr skips empty documents). Enforces `max_documents`.
    fn scan(yaml: &str, max_documents: usize) -> Result<Self> {
        use serde_saphyr::granit_parser::{Event, Parser};

        // Most deployment objects are one document: a look at line starts tells so
        // without a second pass of the parser, which cost about a third of a small
        // object's parse.
        if max_documents >= 1 && !has_document_marker(yaml) {
            return Ok(Self {
                lines: Vec::new(),
                complete: true,
            });
        }
        let mut lines = Vec::new();
        // Events only: aliases are not expanded here, so this pass is linear in the
        // input.
        for event in Parser::new_from_str(yaml) {
            match event {
                Ok((Event::DocumentStart(..), span)) => {
                    if lines.len() >= max_documents {
                        return Err(Error::TooManyDocuments {
                            limit: max_documents,
                        });
                    }
                    lines.push(span.start.line());
                }
                Ok(_) => {}
                // The deserializer reports the error itself.
                Err(_) => {
                    return Ok(Self {
                        lines,
                        complete: false,
                    });
                }
            }
        }
        Ok(Self {
            lines,
            complete: true,
        })
    }

    /// The index of the document that contains `line` (0 when the input has one
    /// document or none).
    fn document_at(&self, line: u64) -> usize {
        let line = usize::try_from(line).unwrap_or(usize::MAX);
        self.lines
            .partition_point(|&start| start <= line)
            .saturating_sub(1)
    }
}

/// Whether a line of `yaml` may start a document marker (`---` or `...`) or a byte
/// order mark. YAML forbids a marker at the start of a line inside any scalar, so an
/// input without one holds at most one document. Errs towards `true`: `---x` counts.
fn has_document_marker(yaml: &str) -> bool {
    yaml.split(['\n', '\r']).any(|line| {
        line.starts_with("---") || line.starts_with("...") || line.starts_with('\u{feff}')
    })
}

/// What [`check_head`] learnt about an object.
struct Head {
    is_list: bool,
}

/// Checks that `value` is a mapping with a valid `apiVersion` and `kind`, and tells
/// whether it is a list.
fn check_head(value: &Value, at: Position) -> Result<Head> {
    let object = value.as_object().ok_or(Error::NotAMapping { at })?;
    let api_version = required_str(object, "apiVersion", "apiVersion", at)?;
    if let Err(reason) = check_api_version(api_version) {
        return Err(invalid(at, "apiVersion", reason));
    }
    let kind = required_str(object, "kind", "kind", at)?;
    if let Err(reason) = check_kind(kind) {
        return Err(invalid(at, "kind", reason));
    }
    // `kind: List` is the generic list; `v1` `ConfigMapList` and friends are what
    // `kubectl get -o yaml` prints. Kinds of other groups that end in `List` are
    // ordinary objects as far as we can tell.
    let is_list = kind == "List"
        || (kind.ends_with("List")
            && api_version == "v1"
            && object.get("items").is_some_and(Value::is_array));
    Ok(Head { is_list })
}

/// Checks `metadata`, `metadata.name` and `metadata.namespace` of a non-list object.
fn check_metadata(value: &Value, at: Position) -> Result<()> {
    let Some(object) = value.as_object() else {
        return Err(Error::NotAMapping { at });
    };
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => {
            return Err(Error::MissingField {
                at,
                field: "metadata",
            });
        }
        Some(Value::Object(metadata)) => metadata,
        Some(other) => {
            return Err(invalid(
                at,
                "metadata",
                format!("expected a mapping, found {}", type_name(other)),
            ));
        }
    };
    let name = required_str(metadata, "name", "metadata.name", at)?;
    if let Err(reason) = check_name(name) {
        return Err(invalid(at, "metadata.name", reason));
    }
    match metadata.get("namespace") {
        // Kubernetes reads a null field as an absent one.
        None | Some(Value::Null) => {}
        Some(Value::String(namespace)) => {
            if let Err(reason) = check_name(namespace) {
                return Err(invalid(at, "metadata.namespace", reason));
            }
        }
        Some(other) => {
            return Err(invalid(
                at,
                "metadata.namespace",
                format!("expected a string, found {}", type_name(other)),
            ));
        }
    }
    Ok(())
}

/// Takes the items out of a list document.
fn list_items(value: Value, document: usize) -> Result<Vec<Value>> {
    let invalid = |reason: &str| Error::InvalidList {
        document,
        reason: reason.to_owned(),
    };
    let Value::Object(mut object) = value else {
        return Err(invalid("not a mapping"));
    };
    match object.remove("items") {
        Some(Value::Array(items)) => Ok(items),
        // `kubectl get -o yaml` prints `items: []` for an empty list, but a list with
        // no `items` at all is most likely a mistake.
        None | Some(Value::Null) => Err(invalid("missing field items")),
        Some(_) => Err(invalid("items is not a sequence")),
    }
}

#[cfg(test)]
mod tests;
