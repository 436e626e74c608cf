//! Home Assistant's username normalisation: Python's `str.strip()` followed by
//! `str.casefold()`. It lives here, beside the models, because both the `homeassistant`
//! provider (which compares usernames by it) and the store (which indexes usernames by
//! it) need the very same rule.

use std::cell::Cell;

thread_local! {
    static FOLDS: Cell<u64> = const { Cell::new(0) };
}

/// How many usernames [`normalize_username`] has folded on the calling thread so far.
/// For tests and benchmarks that count the work of a lookup: a login must fold the name
/// it was given, not every stored one.
#[must_use]
pub fn username_folds_on_this_thread() -> u64 {
    FOLDS.with(Cell::get)
}

/// True for the characters Python's `str.isspace()` accepts, which are what a bare
/// `str.strip()` removes: Unicode `White_Space` (Rust's [`char::is_whitespace`]) plus
/// the four ASCII information separators U+001C..=U+001F.
#[must_use]
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.strip()` with no argument.
#[must_use]
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_whitespace)
}

/// Home Assistant's `Data.normalize_username`: `username.strip().casefold()`.
///
/// Full Unicode case folding, so `ß` becomes `ss` and `ﬁ` becomes `fi`.
///
/// ```
/// use latch_models::normalize_username;
///
/// assert_eq!(normalize_username("  TEST-User "), "test-user");
/// assert_eq!(normalize_username("Straße"), "strasse");
/// ```
#[must_use]
pub fn normalize_username(username: &str) -> String {
    FOLDS.with(|f| f.set(f.get().wrapping_add(1)));
    caseless::default_case_fold_str(python_strip(username))
}

/// True if `username` is already normalised (what a new username must be).
#[must_use]
pub fn is_normalized(username: &str) -> bool {
    normalize_username(username) == username
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn strips_and_lowercases() {
        assert_eq!(normalize_username("  TEST-User "), "test-user");
        assert_eq!(normalize_username("\t\nPaulus\r\u{0b}\u{0c}"), "paulus");
    }

    #[test]
    fn folds_sharp_s_and_other_full_foldings() {
        assert_eq!(normalize_username("ß"), "ss");
        assert_eq!(normalize_username("Straße"), "strasse");
        assert_eq!(normalize_username("ẞ"), "ss");
        assert_eq!(normalize_username("ﬁ"), "fi");
        assert_eq!(normalize_username("ΣΊΣΥΦΟΣ"), "σίσυφοσ");
    }

    #[test]
    fn strips_python_whitespace_including_information_separators() {
        for c in [
            '\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
            '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        ] {
            let s = format!("{c}user{c}");
            assert_eq!(normalize_username(&s), "user", "{c:?}");
        }
    }

    #[test]
    fn keeps_characters_python_does_not_strip() {
        // Zero-width space and the Mongolian vowel separator are not `isspace()`.
        for c in ['\u{200b}', '\u{180e}', '\u{feff}'] {
            let s = format!("{c}user");
            assert_eq!(normalize_username(&s), s, "{c:?}");
        }
    }

    #[test]
    fn inner_whitespace_is_kept() {
        assert_eq!(normalize_username(" Test User "), "test user");
        assert!(!is_normalized("test-user "));
        assert!(!is_normalized("TEST-USER"));
        assert!(is_normalized("test-user"));
    }

    #[test]
    fn folds_are_counted_per_thread() {
        let before = username_folds_on_this_thread();
        let _ = normalize_username("A");
        let _ = is_normalized("b");
        assert_eq!(username_folds_on_this_thread() - before, 2);
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(s in "\\PC{0,24}") {
            let once = normalize_username(&s);
            prop_assert_eq!(normalize_username(&once), once.clone());
        }
    }
}
