//! The configuration: defaults, the documented example, and the errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use latch_auth::{AuthConfig, ThrottleConfig};
use latch_daemon::config::{
    AuditConfig, BOUNDS, CONFIG_FILE, EXAMPLE, HashingConfig, SocketConfig, StoreConfig,
    TokensConfig,
};
use latch_daemon::{ConfigError, ConfigSource, DaemonConfig};
use serde::Serialize;

fn parse(text: &str) -> Result<DaemonConfig, ConfigError> {
    DaemonConfig::from_toml(text, Path::new("/h/latch.toml"))
}

/// Provider and module configs have no `PartialEq`; their `Debug` shows every field.
fn same(a: &DaemonConfig, b: &DaemonConfig) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn defaults() {
    let c = DaemonConfig::default();
    assert_eq!(c.log_level, "info");
    assert_eq!(c.shutdown_grace_secs, 10);
    assert_eq!(
        format!("{:?}", c.auth_config()),
        format!("{:?}", AuthConfig::default()),
        "homeassistant provider and totp module, as Home Assistant"
    );
    assert_eq!(c.throttle, ThrottleConfig::default());
    assert_eq!(c.tokens.access_token_lifetime_secs, 1800);
    assert_eq!(
        c.socket,
        SocketConfig {
            allowed_uids: vec![],
            handshake_timeout_secs: 5,
            max_unauthenticated: 64,
            max_connections: 16_384,
            max_in_flight_per_connection: 256,
            outbound_budget_bytes: 4 * 1024 * 1024,
            stall_timeout_secs: 10,
        }
    );
    assert_eq!(c.store.compact_after_bytes, 8 * 1024 * 1024);
    assert_eq!(c.hashing.pool_size, 0);
    c.validate().unwrap();
}

#[test]
fn the_example_file_is_exactly_the_defaults() {
    let example = parse(EXAMPLE).unwrap();
    assert!(same(&example, &DaemonConfig::default()), "{example:#?}");
}

fn keys_of<T: Serialize>(section: &T) -> BTreeSet<String> {
    toml::Table::try_from(section)
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn table_keys(table: &toml::Table, name: &str) -> BTreeSet<String> {
    table[name].as_table().unwrap().keys().cloned().collect()
}

#[test]
fn the_example_file_sets_every_key() {
    let example: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let top: BTreeSet<&str> = example.keys().map(String::as_str).collect();
    assert_eq!(
        top,
        BTreeSet::from([
            "log_level",
            "shutdown_grace_secs",
            "auth_providers",
            "mfa_modules",
            "throttle",
            "tokens",
            "socket",
            "store",
            "hashing",
            "audit",
        ])
    );
    assert_eq!(
        table_keys(&example, "throttle"),
        keys_of(&ThrottleConfig::default())
    );
    assert_eq!(
        table_keys(&example, "tokens"),
        keys_of(&TokensConfig::default())
    );
    assert_eq!(
        table_keys(&example, "socket"),
        keys_of(&SocketConfig::default())
    );
    assert_eq!(
        table_keys(&example, "store"),
        keys_of(&StoreConfig::default())
    );
    assert_eq!(
        table_keys(&example, "hashing"),
        keys_of(&HashingConfig::default())
    );
    assert_eq!(
        table_keys(&example, "audit"),
        keys_of(&AuditConfig::default())
    );
    let totp = example["mfa_modules"].as_array().unwrap()[0]
        .as_table()
        .unwrap();
    let totp: BTreeSet<&str> = totp.keys().map(String::as_str).collect();
    assert_eq!(
        totp,
        BTreeSet::from(["type", "id", "name", "issuer", "recovery_codes"])
    );
}

/// The commented trusted-networks block of the example, uncommented, is valid.
#[test]
fn the_trusted_networks_example_parses() {
    let block: String = EXAMPLE
        .lines()
        .skip_while(|l| *l != "# [[auth_providers]]")
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(block.contains("type = \"trusted_networks\""), "{block}");
    let config = parse(&block).unwrap();
    assert_eq!(config.auth_providers.len(), 1);
    assert!(format!("{:?}", config.auth_providers[0]).contains("TrustedNetworks"));
}

#[test]
fn an_unknown_key_names_the_file_line_and_key() {
    let err = parse("log_level = \"info\"\n\n[socket]\nmax_conections = 5\n").unwrap_err();
    let ConfigError::Parse {
        path,
        line,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(path, Path::new("/h/latch.toml"));
    assert_eq!(*line, 4);
    assert!(
        message.contains("unknown field `max_conections`"),
        "{message}"
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("invalid configuration /h/latch.toml at line 4, column 1: "),
        "{shown}"
    );

    let err = parse("colour = \"blue\"\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
}

#[test]
fn wrong_types_and_bad_toml_are_parse_errors_with_lines() {
    let err = parse("log_level = \"info\"\nshutdown_grace_secs = \"ten\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
    let err = parse("[tokens\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { line: 1, .. }), "{err:?}");
}

#[test]
fn provider_refusals_are_reported() {
    let err = parse("[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 3\n").unwrap_err();
    assert!(
        err.to_string().contains("bcrypt_cost 3 is outside 4..=31"),
        "{err}"
    );
    let err = parse("[[auth_providers]]\ntype = \"ldap\"\n").unwrap_err();
    assert!(err.to_string().contains("ldap"), "{err}");
}

#[test]
fn out_of_range_values_name_the_key() {
    for (text, key) in [
        (
            "[socket]\nhandshake_timeout_secs = 0\n",
            "socket.handshake_timeout_secs",
        ),
        ("[socket]\nmax_connections = 0\n", "socket.max_connections"),
        (
            "[tokens]\naccess_token_lifetime_secs = 0\n",
            "tokens.access_token_lifetime_secs",
        ),
        (
            "[store]\ncompact_after_bytes = 0\n",
            "store.compact_after_bytes",
        ),
        ("log_level = \"info,=[\"\n", "log_level"),
    ] {
        let err = parse(text).unwrap_err();
        let ConfigError::Invalid { key: k, path, .. } = &err else {
            panic!("{text}: {err:?}")
        };
        assert_eq!(*k, key);
        assert_eq!(path.as_deref(), Some(Path::new("/h/latch.toml")));
        assert!(err.to_string().contains("/h/latch.toml"), "{err}");
    }
}

#[test]
fn load_reads_the_home_file_or_falls_back_to_defaults() {
    let home = tempfile::tempdir().unwrap();
    let (config, source) = DaemonConfig::load(None, home.path()).unwrap();
    assert_eq!(source, ConfigSource::Defaults);
    assert!(same(&config, &DaemonConfig::default()));

    std::fs::write(home.path().join(CONFIG_FILE), "log_level = \"debug\"\n").unwrap();
    let (config, source) = DaemonConfig::load(None, home.path()).unwrap();
    assert_eq!(source, ConfigSource::File(home.path().join(CONFIG_FILE)));
    assert_eq!(config.log_level, "debug");

    // A file named with --config must exist.
    let missing = home.path().join("nope.toml");
    let err = DaemonConfig::load(Some(&missing), home.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

/// `section.key` as a TOML document setting it to `value`, with the key on line 3.
fn document_setting(key: &str, value: u64) -> String {
    match key.split_once('.') {
        Some((section, name)) => format!("# set one key\n[{section}]\n{name} = {value}\n"),
        None => format!("# set one key\n\n{key} = {value}\n"),
    }
}

#[test]
fn every_bound_is_stated_next_to_its_key_in_the_example() {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    for bound in BOUNDS {
        let name = bound.key.rsplit('.').next().unwrap();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{} is not in the example", bound.key));
        let comment: String = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let range = format!("Range {}..={}", bound.min, bound.max);
        assert!(
            comment.contains(&range),
            "the comment above {} does not say {range}: {comment}",
            bound.key
        );
    }
}

#[test]
fn every_bound_accepts_its_ends_and_refuses_one_past_them_at_the_key() {
    for bound in BOUNDS {
        for ok in [bound.min, bound.max] {
            let text = document_setting(bound.key, ok);
            parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let mut refused = vec![bound.max + 1];
        if let Some(below) = bound.min.checked_sub(1) {
            refused.push(below);
        }
        for bad in refused {
            let text = document_setting(bound.key, bad);
            let err = parse(&text).unwrap_err();
            let ConfigError::Invalid {
                key, line, column, ..
            } = &err
            else {
                panic!("{text}: {err:?}")
            };
            assert_eq!(*key, bound.key);
            assert_eq!((*line, *column), (Some(3), Some(1)), "{text}: {err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with("invalid configuration /h/latch.toml at line 3, column 1: "),
                "{shown}"
            );
            assert!(
                shown.contains(&format!("is {bad}, outside {}..={}", bound.min, bound.max)),
                "{shown}"
            );
        }
    }
}

#[test]
fn a_value_error_reports_the_line_and_column_of_its_key() {
    let text = "log_level = \"info\"\n\n[throttle]\nenabled = true\n  lockout_secs = 99999999999\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.position(), Some((5, 3)), "{err}");
    assert!(
        err.to_string()
            .contains("throttle.lockout_secs is 99999999999"),
        "{err}"
    );
    // Dotted and inline forms point at the key too.
    let err = parse("socket.handshake_timeout_secs = 0\n").unwrap_err();
    assert_eq!(err.position(), Some((1, 8)), "{err}");
    let err = parse("x = 1\n").unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Parse {
                line: 1,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let err = parse("\ntokens = { access_token_lifetime_secs = 0 }\n").unwrap_err();
    assert_eq!(err.position(), Some((2, 12)), "{err}");
}

#[test]
fn log_levels_must_name_a_level() {
    for good in [
        "info",
        "WARN",
        "off",
        "info,latch_store=debug",
        "debug,latch_auth=trace",
        "latch_auth[{user=(}]=debug",
    ] {
        parse(&format!("log_level = {good:?}\n")).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "loud",
        "info,loud",
        "",
        " ",
        "latch_store",
        "latch_auth[{user=x}]",
        "info,=[",
    ] {
        let err = parse(&format!("\nlog_level = {bad:?}\n")).unwrap_err();
        let ConfigError::Invalid { key, .. } = &err else {
            panic!("{bad}: {err:?}")
        };
        assert_eq!(*key, "log_level");
        assert_eq!(err.position(), Some((2, 1)), "{err}");
    }
    let err = parse("log_level = \"loud\"\n").unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("\"loud\" is not a level"), "{shown}");
    assert!(
        shown.contains("off, error, warn, info, debug, trace"),
        "{shown}"
    );
}

#[test]
fn an_empty_provider_list_is_refused() {
    let err = parse("log_level = \"info\"\nauth_providers = []\n").unwrap_err();
    let ConfigError::Invalid { key, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*key, "auth_providers");
    assert_eq!(err.position(), Some((2, 1)));
    assert!(err.to_string().contains("no one could log in"), "{err}");
    // No MFA module at all is fine.
    parse("mfa_modules = []\n").unwrap();
}

#[test]
fn a_provider_or_module_refusal_points_at_the_key_it_names() {
    let text = "log_level = \"info\"\n\n[[auth_providers]]\ntype = \"homeassistant\"\nname = \"x\"\nbcrypt_cost = 3\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.position(), Some((6, 1)), "{err}");
    assert!(
        err.to_string().contains("bcrypt_cost 3 is outside 4..=31"),
        "{err}"
    );

    let text = "[[auth_providers]]\ntype = \"homeassistant\"\n\n[[mfa_modules]]\ntype = \"totp\"\n id = \"totp\"\n recovery_codes = 1000\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.position(), Some((7, 2)), "{err}");

    let text = "[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_costs = 10\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.position(), Some((3, 1)), "{err}");
    assert!(
        err.to_string().contains("unknown field `bcrypt_costs`"),
        "{err}"
    );
}

#[test]
fn allowed_uids_are_real_uids_and_few() {
    let err = parse("[socket]\nallowed_uids = [1000, 4294967295]\n").unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::Invalid {
                key: "socket.allowed_uids",
                ..
            }
        ),
        "{err:?}"
    );
    let many: Vec<String> = (0..1025).map(|u| u.to_string()).collect();
    let err = parse(&format!("[socket]\nallowed_uids = [{}]\n", many.join(","))).unwrap_err();
    assert!(err.to_string().contains("at most 1024"), "{err}");
    parse("[socket]\nallowed_uids = [1000, 1001]\n").unwrap();
}
