//! Length and content limits of every string latch takes from outside, in one place.
//!
//! Home Assistant caps none of these. latch caps what a caller sends (a request, a form,
//! a configuration built in code) so that one request cannot make the daemon keep
//! megabytes, and refuses control characters in names so that no name can rewrite the
//! terminal of an operator who lists it. The caps apply to **new input only**: a Home
//! Assistant `.storage` directory whose names are longer loads and works unchanged
//! (Home Assistant itself loads any length), and such a user can still log in.
//!
//! | what | cap (bytes of UTF-8) | content |
//! |---|---|---|
//! | a new username (onboarding, adding a password login, renaming) | [`MAX_USERNAME_BYTES`] (255) | no [control characters](is_forbidden_in_names) |
//! | a user's display name | [`MAX_NAME_BYTES`] (255) | no control characters |
//! | a long-lived token's client name | [`MAX_NAME_BYTES`] (255) | no control characters |
//! | a client icon | [`MAX_ICON_BYTES`] (255) | no control characters |
//! | user, group, credential, refresh-token, flow, provider and module ids | [`MAX_ID_BYTES`] (255) | |
//! | OAuth client ids and redirect URIs | [`MAX_URL_BYTES`] (2,048) | |
//! | each value of a login or MFA-setup form (a username as typed, a password, a code) | [`MAX_FORM_VALUE_BYTES`] (1,024) | |
//! | a new password (onboarding, set, change) | [`MAX_PASSWORD_INPUT_BYTES`] (1,024); bcrypt reads the first 72 | |
//! | an entity id in a permission check | [`MAX_ENTITY_ID_BYTES`] (255, Home Assistant's own entity-id limit) | |
//! | an access or refresh token presented | [`MAX_TOKEN_BYTES`] (8,192, Home Assistant's JWT limit) | |
//!
//! Text that is only **echoed** from input (the username of a failed login in events,
//! in the audit log and in throttle keys; a value quoted in an error message) is passed
//! through [`echo`]: control characters and backslashes are escaped and the result is
//! cut at [`MAX_ECHO_BYTES`], so a 2,000-character username is never kept whole.
//!
//! ```
//! use latch_models::limits::{self, LimitError, MAX_NAME_BYTES};
//!
//! assert!(limits::check_name("name", "Anne", MAX_NAME_BYTES).is_ok());
//! assert!(matches!(
//!     limits::check_name("name", "Anne\u{1b}[2J", MAX_NAME_BYTES),
//!     Err(LimitError::ControlCharacter { at: 4, .. })
//! ));
//! assert_eq!(limits::echo("bob\u{1b}[2J"), "bob\\u{1b}[2J");
//! assert!(limits::echo(&"x".repeat(2_000)).len() <= limits::MAX_ECHO_BYTES);
//! ```

use std::fmt::Write as _;

/// A new username: 255 bytes.
pub const MAX_USERNAME_BYTES: usize = 255;

/// A user's display name, a long-lived token's client name: 255 bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A client icon name (`mdi:…`): 255 bytes.
pub const MAX_ICON_BYTES: usize = 255;

/// An id of a user, group, credential, refresh token, flow, provider or module: 255
/// bytes (latch's own ids are 32 characters).
pub const MAX_ID_BYTES: usize = 255;

/// An OAuth client id or redirect URI (IndieAuth URLs): 2,048 bytes.
pub const MAX_URL_BYTES: usize = 2_048;

/// Each value of a login or MFA-setup form: 1,024 bytes.
pub const MAX_FORM_VALUE_BYTES: usize = 1_024;

/// A new password: 1,024 bytes (bcrypt only reads the first 72).
pub const MAX_PASSWORD_INPUT_BYTES: usize = 1_024;

/// An entity id in a permission check: 255 bytes, Home Assistant's own limit.
pub const MAX_ENTITY_ID_BYTES: usize = 255;

/// An access token or refresh token presented for checking: 8,192 bytes, the length
/// Home Assistant's JWT decoder accepts at most.
pub const MAX_TOKEN_BYTES: usize = 8_192;

/// Text echoed from input into events, the audit log, throttle keys and error messages
/// is cut to this many bytes (after escaping): 255, so a valid username is echoed whole.
pub const MAX_ECHO_BYTES: usize = 255;

/// What [`echo`] puts at the end of a cut text.
pub const ELLIPSIS: &str = "…";

/// A string that breaks a limit. The message names the field and the limit; it never
/// quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Longer than its cap.
    #[error("the {field} is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// Which value.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Holds a character names may not hold.
    #[error(
        "the {field} contains the control character U+{code:04X} at byte {at}; names may \
         not contain control characters"
    )]
    ControlCharacter {
        /// Which value.
        field: &'static str,
        /// Byte offset of the character.
        at: usize,
        /// The character's code point.
        code: u32,
    },
}

impl LimitError {
    /// The field the error is about.
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::TooLong { field, .. } | Self::ControlCharacter { field, .. } => field,
        }
    }
}

/// Refuses `value` if it is longer than `max` bytes.
///
/// # Errors
/// [`LimitError::TooLong`].
pub fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), LimitError> {
    if value.len() > max {
        return Err(LimitError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Refuses a name longer than `max` bytes or holding a character
/// [`is_forbidden_in_names`].
///
/// # Errors
/// [`LimitError::TooLong`], then [`LimitError::ControlCharacter`] for the first such
/// character.
pub fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), LimitError> {
    check_len(field, value, max)?;
    if let Some((at, c)) = value
        .char_indices()
        .find(|(_, c)| is_forbidden_in_names(*c))
    {
        return Err(LimitError::ControlCharacter {
            field,
            at,
            code: u32::from(c),
        });
    }
    Ok(())
}

/// The rule for a new username: at most [`MAX_USERNAME_BYTES`], no control characters.
/// (Whether it is normalised and unique is the provider's rule.)
///
/// # Errors
/// As [`check_name`].
pub fn check_username(value: &str) -> Result<(), LimitError> {
    check_name("username", value, MAX_USERNAME_BYTES)
}

/// Characters no name may hold, because a terminal or a text view acts on them: the
/// C0 and C1 controls and DEL (`char::is_control`), the bidirectional embeddings,
/// overrides and isolates (U+202A..=U+202E, U+2066..=U+2069, which reorder the text
/// around them), and the line and paragraph separators U+2028 and U+2029.
#[must_use]
pub fn is_forbidden_in_names(c: char) -> bool {
    c.is_control()
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || c == '\u{2028}'
        || c == '\u{2029}'
}

/// `text` made safe to echo: [`echo_within`] with [`MAX_ECHO_BYTES`].
#[must_use]
pub fn echo(text: &str) -> String {
    echo_within(text, MAX_ECHO_BYTES)
}

/// `text` made safe to echo into a log, an event or a message, in at most `max` bytes:
/// every character [`is_forbidden_in_names`] becomes `\u{XX}` and a backslash becomes
/// `\\` (so an escape cannot be forged); if the result would be longer than `max`, it
/// is cut at a character boundary and ends with [`ELLIPSIS`]. The work is bounded by
/// `max`, not by the length of `text`.
#[must_use]
pub fn echo_within(text: &str, max: usize) -> String {
    let budget = max.saturating_sub(ELLIPSIS.len());
    let mut out = String::with_capacity(text.len().min(max));
    // The end of the last piece that still leaves room for the ellipsis.
    let mut cut = 0;
    for c in text.chars() {
        let before = out.len();
        if is_forbidden_in_names(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
        if out.len() <= budget {
            cut = out.len();
        }
        if out.len() > max {
            out.truncate(cut.min(before));
            if max >= ELLIPSIS.len() {
                out.push_str(ELLIPSIS);
            }
            return out;
        }
    }
    out
}

/// `text` with every character [`is_forbidden_in_names`] replaced by U+FFFD and cut at
/// [`MAX_ECHO_BYTES`] (ending with [`ELLIPSIS`] when cut). Unlike [`echo`] it is
/// idempotent (`sanitize(sanitize(x)) == sanitize(x)`), so it suits keys that are shown
/// to an operator and typed back, such as throttle keys.
#[must_use]
pub fn sanitize(text: &str) -> String {
    let budget = MAX_ECHO_BYTES - ELLIPSIS.len();
    let mut out = String::with_capacity(text.len().min(MAX_ECHO_BYTES));
    let mut cut = 0;
    for c in text.chars() {
        let before = out.len();
        out.push(if is_forbidden_in_names(c) {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        });
        if out.len() <= budget {
            cut = out.len();
        }
        if out.len() > MAX_ECHO_BYTES {
            out.truncate(cut.min(before));
            out.push_str(ELLIPSIS);
            return out;
        }
    }
    out
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character
/// boundary.
#[must_use]
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_cap_admits_its_length_and_refuses_one_byte_more() {
        for max in [
            MAX_USERNAME_BYTES,
            MAX_NAME_BYTES,
            MAX_ICON_BYTES,
            MAX_ID_BYTES,
            MAX_URL_BYTES,
            MAX_FORM_VALUE_BYTES,
            MAX_PASSWORD_INPUT_BYTES,
            MAX_ENTITY_ID_BYTES,
            MAX_TOKEN_BYTES,
        ] {
            assert!(check_len("value", &"a".repeat(max), max).is_ok());
            assert_eq!(
                check_len("value", &"a".repeat(max + 1), max),
                Err(LimitError::TooLong {
                    field: "value",
                    len: max + 1,
                    max
                })
            );
        }
        assert_eq!(MAX_USERNAME_BYTES, 255);
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert!(check_username(&"ü".repeat(127)).is_ok());
        assert!(check_username(&"ü".repeat(128)).is_err());
    }

    #[test]
    fn names_refuse_control_and_reordering_characters() {
        for bad in [
            "a\u{1b}[2Jb",
            "line\nbreak",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}31m",
            "rlo\u{202e}txt.exe",
            "isolate\u{2066}x",
            "sep\u{2028}x",
        ] {
            let err = check_name("name", bad, MAX_NAME_BYTES).unwrap_err();
            assert!(
                matches!(err, LimitError::ControlCharacter { field: "name", .. }),
                "{bad:?}"
            );
            assert!(err.to_string().contains("control character U+"), "{err}");
        }
        let err = check_name("name", "ab\u{1b}", MAX_NAME_BYTES).unwrap_err();
        assert_eq!(
            err,
            LimitError::ControlCharacter {
                field: "name",
                at: 2,
                code: 0x1b
            }
        );
        assert_eq!(
            err.to_string(),
            "the name contains the control character U+001B at byte 2; names may not \
             contain control characters"
        );
        // Letters of any script, emoji with joiners, marks and inner spaces are fine.
        for good in ["Anne B", "Ærøskøbing", "محمد\u{200f}", "👩\u{200d}💻", "ﬁ"] {
            assert!(check_name("name", good, MAX_NAME_BYTES).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn echo_escapes_and_cuts() {
        assert_eq!(echo("plain"), "plain");
        assert_eq!(echo("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\u{a}");
        assert_eq!(echo("back\\slash"), "back\\\\slash");
        assert_eq!(echo("\u{202e}"), "\\u{202e}");
        let long = "x".repeat(2_000);
        let cut = echo(&long);
        assert_eq!(cut.len(), MAX_ECHO_BYTES);
        assert!(cut.ends_with(ELLIPSIS));
        // Exactly the cap: whole.
        assert_eq!(
            echo(&"y".repeat(MAX_ECHO_BYTES)),
            "y".repeat(MAX_ECHO_BYTES)
        );
        // An escape is never cut in half.
        let escapes = "\u{1b}".repeat(100);
        let cut = echo(&escapes);
        assert!(cut.len() <= MAX_ECHO_BYTES);
        assert!(
            cut.trim_end_matches(ELLIPSIS)
                .split("\\u{1b}")
                .all(str::is_empty)
        );
        assert_eq!(echo_within("abcdef", 5), "ab…");
        assert_eq!(echo_within("abcdef", 2), "");
    }

    #[test]
    fn sanitize_replaces_cuts_and_is_idempotent() {
        assert_eq!(sanitize("bob\u{1b}[2J"), "bob\u{fffd}[2J");
        assert_eq!(sanitize("a\\b"), "a\\b", "backslashes stay");
        let long = sanitize(&"z".repeat(1_000));
        assert_eq!(long.len(), MAX_ECHO_BYTES);
        assert!(long.ends_with(ELLIPSIS));
        assert_eq!(sanitize(&long), long);
    }

    #[test]
    fn prefix_stops_on_a_character_boundary() {
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(prefix("aüb", 2), "a");
        assert_eq!(prefix("aüb", 3), "aü");
    }

    proptest! {
        #[test]
        fn echo_is_bounded_and_free_of_control_characters(s in "\\PC{0,400}|[\\x00-\\x7f]{0,400}", max in 0usize..300) {
            let out = echo_within(&s, max);
            prop_assert!(out.len() <= max);
            prop_assert!(!out.chars().any(is_forbidden_in_names));
            if s.len() <= max && !s.chars().any(|c| is_forbidden_in_names(c) || c == '\\') {
                prop_assert_eq!(out, s);
            }
        }

        #[test]
        fn sanitize_is_bounded_clean_and_idempotent(s in "\\PC{0,400}|[\\x00-\\x7f]{0,400}") {
            let once = sanitize(&s);
            prop_assert!(once.len() <= MAX_ECHO_BYTES);
            prop_assert!(!once.chars().any(is_forbidden_in_names));
            prop_assert_eq!(sanitize(&once), once);
        }
    }
}
