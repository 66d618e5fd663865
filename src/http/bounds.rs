//! Bounds on client-chosen strings and lists (documented in docs/api.md, "Input bounds").
//!
//! Every identifier, key, topic and pattern a client chooses passes one of these checks
//! before it reaches an actor: a value out of bounds is a 400 naming the field.

use crate::error::ApiError;

/// A value out of bounds: a 400 in the HTTP layer, a message elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfBounds(pub String);

impl From<OutOfBounds> for ApiError {
    fn from(e: OutOfBounds) -> ApiError {
        ApiError::bad_request(e.0)
    }
}

impl From<OutOfBounds> for String {
    fn from(e: OutOfBounds) -> String {
        e.0
    }
}

/// Longest state key or spec key part, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest name chosen by a client (project, spec name, rule id, webhook id, template id,
/// instance name, workspace, stack, capability, topic, pattern), in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest free text stored with an instance (intent), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest URL (webhooks), in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Most entries of a list of names in one request (webhook patterns, capabilities).
pub const MAX_LIST_ITEMS: usize = 100;

/// `value` is at most `max` bytes long and has no control character (U+0000–U+001F,
/// U+007F–U+009F).
pub fn bounded(field: &str, value: &str, max: usize) -> Result<(), OutOfBounds> {
    if value.len() > max {
        return Err(OutOfBounds(format!("{field} is longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(OutOfBounds(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// Free text: at most `max` bytes, no control character but tab, line feed and carriage
/// return.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), OutOfBounds> {
    if value.len() > max {
        return Err(OutOfBounds(format!("{field} is longer than {max} bytes")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(OutOfBounds(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// A state key: non-empty, at most [`MAX_KEY_BYTES`], no control characters.
pub fn key(field: &str, value: &str) -> Result<(), OutOfBounds> {
    if value.is_empty() {
        return Err(OutOfBounds(format!("{field} must not be empty")));
    }
    bounded(field, value, MAX_KEY_BYTES)
}

/// A name: at most [`MAX_NAME_BYTES`], no control characters (emptiness is the caller's
/// rule).
pub fn name(field: &str, value: &str) -> Result<(), OutOfBounds> {
    bounded(field, value, MAX_NAME_BYTES)
}

/// A list of names: at most [`MAX_LIST_ITEMS`] entries, each a [`name`].
pub fn names<S: AsRef<str>>(field: &str, values: &[S]) -> Result<(), OutOfBounds> {
    if values.len() > MAX_LIST_ITEMS {
        return Err(OutOfBounds(format!(
            "{field} has more than {MAX_LIST_ITEMS} entries"
        )));
    }
    values.iter().try_for_each(|v| name(field, v.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_printable() {
        assert!(key("key", "a/b c").is_ok());
        assert!(key("key", &"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(key("key", &"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(key("key", "").is_err());
        assert!(key("key", "a\0b").is_err());
        assert!(key("key", "a\nb").is_err());
        assert!(key("key", "a\u{85}b").is_err());
        assert!(key("key", "é/日本").is_ok());
    }

    #[test]
    fn lists_are_bounded() {
        let many = vec!["x"; MAX_LIST_ITEMS + 1];
        assert!(names("patterns", &many[..MAX_LIST_ITEMS]).is_ok());
        assert!(names("patterns", &many).is_err());
        assert!(names("patterns", &["ok", "bad\t"]).is_err());
    }
}
