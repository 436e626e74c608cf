//! The daemon's configuration file, `latch.toml`.

use std::path::Path;

use latch_daemon::{ConfigError, DaemonConfig};

/// Config parsing: the input (when it is UTF-8) as `latch.toml`.
///
/// A configuration that parses also validates and gives its derived settings; one that
/// does not gets an error whose position lies inside the text; a trailing newline
/// never changes whether a file parses.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("latch.toml");
    match DaemonConfig::from_toml(text, path) {
        Ok(config) => {
            assert!(
                config.validate().is_ok(),
                "a parsed config does not validate"
            );
            let _ = (
                config.auth_config(),
                config.handshake_timeout(),
                config.shutdown_grace(),
                format!("{config:?}"),
            );
            let longer = format!("{text}\n");
            assert!(
                DaemonConfig::from_toml(&longer, path).is_ok(),
                "a trailing newline breaks a valid config"
            );
        }
        Err(ConfigError::Parse { line, column, .. }) => {
            assert!(line >= 1 && column >= 1, "a position counted from 0");
            assert!(
                line <= text.matches('\n').count() + 1,
                "line {line} is past the end"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
