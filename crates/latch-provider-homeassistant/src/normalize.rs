//! Username normalisation: Python's `str.strip()` followed by `str.casefold()`. The rule
//! itself lives in `latch-models` (the store indexes usernames by it); it is re-exported
//! here, where Home Assistant defines it.

pub use latch_models::{is_normalized, is_python_whitespace, normalize_username, python_strip};
