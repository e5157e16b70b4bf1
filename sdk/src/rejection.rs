//! Rejections: how a domain says "no" to a command, with every failing field at once.

/// One failing field of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name or path (`email`, `address.city`).
    pub field: String,
    /// A message a person can read.
    pub message: String,
}

/// A command refused by the domain's rules. The host appends nothing and answers HTTP 422 with
/// `code`, `message` and `fields` in the problem body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable, kebab-case reason (`validation-failed`, `carrier-deactivated`).
    pub code: String,
    /// A sentence a person can read.
    pub message: String,
    /// Every failing field; empty when the rejection is not about fields.
    pub fields: Vec<FieldError>,
}

impl Rejection {
    /// A rejection with no field details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), fields: Vec::new() }
    }

    /// Adds a failing field.
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.fields.push(FieldError { field: field.into(), message: message.into() });
        self
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        for field in &self.fields {
            write!(f, "; {}: {}", field.field, field.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// Collects every failing field of a command, then rejects once with all of them.
///
/// ```
/// use cairn_sdk::Validation;
/// let mut v = Validation::new();
/// v.require(false, "name", "The name is required");
/// v.require(false, "email", "The email must be a valid email address");
/// let rejection = v.finish().unwrap_err();
/// assert_eq!(rejection.fields.len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct Validation {
    fields: Vec<FieldError>,
}

impl Validation {
    /// An empty validation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` for `field` unless `ok`.
    pub fn require(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.fields.push(FieldError { field: field.to_string(), message: message.to_string() });
        }
        self
    }

    /// `Ok(())` when every check passed, else a `validation-failed` rejection naming every field.
    pub fn finish(&mut self) -> Result<(), Rejection> {
        self.finish_as("validation-failed", "The command has invalid fields")
    }

    /// Like [`Validation::finish`] with another code and message prefix; queries use
    /// [`crate::params::check`], which finishes as `invalid-parameters`.
    pub fn finish_as(&mut self, code: &str, message: &str) -> Result<(), Rejection> {
        if self.fields.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.fields.iter().map(|f| f.field.as_str()).collect();
        Err(Rejection {
            code: code.to_string(),
            message: format!("{message}: {}", names.join(", ")),
            fields: std::mem::take(&mut self.fields),
        })
    }
}
