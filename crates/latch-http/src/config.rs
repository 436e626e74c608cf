//! latch-http's configuration: the `[http]` section of `latch.toml` (the file latchd
//! reads, which ignores this section), or of the file `--config` names.
//!
//! Every key is optional; `latch-http.toml.example` in this crate holds every key with
//! its default (a test parses it and compares) and `latch-http --print-default-config`
//! prints it. Flags override the file: `--listen`, `--log-level`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::access::{AccessRule, AccessRules, Finding, Policy, lint};
use crate::forwarded::ProxyRules;

/// The documented default configuration, as `--print-default-config` prints it.
pub const EXAMPLE: &str = include_str!("../latch-http.toml.example");

/// The configuration file's name inside the latch home.
pub const CONFIG_FILE: &str = "latch.toml";

/// Why the configuration cannot be used (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not TOML or its `[http]` section does not fit the schema.
    #[error("invalid configuration {} at line {line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error (1 when the parser gave no position).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A value parses but cannot be used.
    #[error("invalid configuration: http.{key} {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// `[http]`. See `latch-http.toml.example` for each key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on. Default `127.0.0.1:8123`.
    pub listen: SocketAddr,
    /// Log filter (a level or tracing directives). Default `info`.
    pub log_level: String,
    /// Believe `X-Forwarded-For` from `trusted_proxies`. Default false.
    pub use_x_forwarded_for: bool,
    /// Proxies (addresses or networks) whose forwarded headers are believed.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// PEM certificate chain; TLS is on when this and `ssl_key` are set.
    pub ssl_certificate: Option<PathBuf>,
    /// PEM private key.
    pub ssl_key: Option<PathBuf>,
    /// Origins allowed to call the token endpoints from a browser (CORS).
    pub cors_allowed_origins: Vec<String>,
    /// Send `X-Frame-Options: SAMEORIGIN` on API answers (Home Assistant's default).
    pub use_x_frame_options: bool,
    /// Largest request body, in bytes. Default 65536.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers), in bytes. Default 16384.
    pub max_header_bytes: usize,
    /// A client must send a request's head within this many seconds (also bounds an
    /// idle keep-alive connection). Default 10.
    pub header_timeout_secs: u64,
    /// A request (body included) must be answered within this many seconds. Default 30.
    pub request_timeout_secs: u64,
    /// Connections served at once; more wait in the kernel's queue. Default 1024.
    pub max_connections: usize,
    /// Login flows in progress from one address at most. Default 10.
    pub max_login_flows_per_address: usize,
    /// Seconds to fetch a client's page for its redirect URIs (IndieAuth). Default 5.
    pub discovery_timeout_secs: u64,
    /// Bytes of a client's page read at most. Default 10240.
    pub discovery_max_bytes: usize,
    /// Where browsers reach latch-http's pages (`https://auth.home.example`): the
    /// sign-in page of forward-auth redirects, and latch-http's own OAuth client id.
    /// Default: none; the sign-in page is then `/auth/signin` on the protected site's
    /// own host (the proxy sends `/auth/` there to latch-http).
    pub public_url: Option<String>,
    /// The domain the session cookie is set for (`home.example` covers every
    /// `*.home.example`). Default: none (the cookie is the sign-in page's host's only).
    pub cookie_domain: Option<String>,
    /// More domains (and their subdomains) a sign-in may return to, besides the cookie
    /// domain and the public URL's host.
    pub return_domains: Vec<String>,
    /// For a signed-in user no access rule matches: `deny` (default) or `allow`.
    pub default_policy: Policy,
    /// `[[http.access]]` rules, first match wins.
    #[serde(deserialize_with = "spanned_rules")]
    pub access: Vec<AccessRule>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8123)),
            log_level: "info".to_owned(),
            use_x_forwarded_for: false,
            trusted_proxies: Vec::new(),
            ssl_certificate: None,
            ssl_key: None,
            cors_allowed_origins: vec!["https://cast.home-assistant.io".to_owned()],
            use_x_frame_options: true,
            max_body_bytes: 65_536,
            max_header_bytes: 16_384,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 1024,
            max_login_flows_per_address: 10,
            discovery_timeout_secs: 5,
            discovery_max_bytes: 10_240,
            public_url: None,
            cookie_domain: None,
            return_domains: Vec::new(),
            default_policy: Policy::Deny,
            access: Vec::new(),
        }
    }
}

/// The rules, each with the byte offset of its table in `line` (turned into a line
/// number by [`HttpConfig::parse`]).
fn spanned_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AccessRule>, D::Error> {
    let items = Vec::<toml::Spanned<AccessRule>>::deserialize(d)?;
    Ok(items
        .into_iter()
        .map(|item| {
            let offset = item.span().start;
            let mut rule = item.into_inner();
            rule.line = offset;
            rule
        })
        .collect())
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A cookie or return domain: a lower-case host name, without a leading dot.
fn domain_ok(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// Addresses or networks: `192.168.1.1` is `192.168.1.1/32`.
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not an IP address or network"))
                })
        })
        .collect()
}

/// A file's top level: only `[http]` is ours.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    http: HttpConfig,
}

fn bounded(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            reason: format!("must be between {min} and {max}, not {value}"),
        })
    }
}

impl HttpConfig {
    /// Parses the `[http]` section of a whole file's text (other sections are latchd's).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line, or [`ConfigError::Invalid`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut file: File = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |span| line_of(text, span.start));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                message: e.message().to_owned(),
            }
        })?;
        for rule in &mut file.http.access {
            rule.line = line_of(text, rule.line);
        }
        file.http.validate()?;
        Ok(file.http)
    }

    /// Reads `path` (`explicit`: it must exist), else the defaults.
    ///
    /// # Errors
    /// [`ConfigError::Read`] for an unreadable file; as [`HttpConfig::parse`].
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if !explicit && e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Checks the values that parse but cannot be used.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.use_x_forwarded_for && self.trusted_proxies.is_empty() {
            return Err(ConfigError::Invalid {
                key: "trusted_proxies",
                reason: "must list the proxies when use_x_forwarded_for is on (every \
                         forwarded request would be refused)"
                    .to_owned(),
            });
        }
        if self.ssl_certificate.is_some() != self.ssl_key.is_some() {
            return Err(ConfigError::Invalid {
                key: "ssl_key",
                reason: "and ssl_certificate must be set together".to_owned(),
            });
        }
        for origin in &self.cors_allowed_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == origin.as_str()
            });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "cors_allowed_origins",
                    reason: format!("{origin:?} is not an origin like https://example.com"),
                });
            }
        }
        bounded("max_body_bytes", self.max_body_bytes as u64, 1024, 16 << 20)?;
        bounded(
            "max_header_bytes",
            self.max_header_bytes as u64,
            4096,
            1 << 20,
        )?;
        bounded("header_timeout_secs", self.header_timeout_secs, 1, 300)?;
        bounded("request_timeout_secs", self.request_timeout_secs, 1, 3600)?;
        bounded("max_connections", self.max_connections as u64, 1, 100_000)?;
        bounded(
            "max_login_flows_per_address",
            self.max_login_flows_per_address as u64,
            1,
            10_000,
        )?;
        bounded("discovery_timeout_secs", self.discovery_timeout_secs, 1, 60)?;
        bounded(
            "discovery_max_bytes",
            self.discovery_max_bytes as u64,
            1024,
            1 << 20,
        )?;
        self.validate_forward_auth()?;
        tracing_subscriber::EnvFilter::builder()
            .with_regex(false)
            .parse(&self.log_level)
            .map_err(|e| ConfigError::Invalid {
                key: "log_level",
                reason: format!("{:?} is not a log filter: {e}", self.log_level),
            })?;
        Ok(())
    }

    /// The forward-auth keys: the public URL, the domains, each access rule.
    fn validate_forward_auth(&self) -> Result<(), ConfigError> {
        if let Some(public) = &self.public_url {
            let ok = url::Url::parse(public).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == public.trim_end_matches('/')
            });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "public_url",
                    reason: format!(
                        "{public:?} is not an origin like https://auth.home.example (no path)"
                    ),
                });
            }
        }
        for (key, domain) in self
            .cookie_domain
            .iter()
            .map(|d| ("cookie_domain", d))
            .chain(self.return_domains.iter().map(|d| ("return_domains", d)))
        {
            if !domain_ok(domain) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{domain:?} is not a lower-case domain name like home.example"),
                });
            }
        }
        let mut rules = self.access.clone();
        for rule in &mut rules {
            rule.check().map_err(|reason| ConfigError::Invalid {
                key: "access",
                reason: format!("rule at line {}: {reason}", rule.line),
            })?;
        }
        Ok(())
    }

    /// The access rules, checked (hosts lower-cased).
    #[must_use]
    pub fn access_rules(&self) -> AccessRules {
        let mut rules = self.access.clone();
        for rule in &mut rules {
            // validate() has checked them; this only normalises.
            let _ = rule.check();
        }
        AccessRules {
            rules,
            default_policy: self.default_policy,
        }
    }

    /// What `--check-config` reports about the access rules: unreachable rules (errors)
    /// and partly overlapping ones (warnings).
    #[must_use]
    pub fn access_findings(&self) -> Vec<Finding> {
        lint(&self.access_rules().rules)
    }

    /// The proxy rules.
    #[must_use]
    pub fn proxy_rules(&self) -> ProxyRules {
        ProxyRules {
            use_x_forwarded_for: self.use_x_forwarded_for,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// `header_timeout_secs`.
    #[must_use]
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    /// `request_timeout_secs`.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// `discovery_timeout_secs`.
    #[must_use]
    pub fn discovery_timeout(&self) -> Duration {
        Duration::from_secs(self.discovery_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HttpConfig, ConfigError> {
        HttpConfig::parse(text, Path::new("latch.toml"))
    }

    #[test]
    fn the_example_is_the_defaults() {
        assert_eq!(parse(EXAMPLE).unwrap(), HttpConfig::default());
    }

    #[test]
    fn other_sections_are_latchds() {
        let text = "log_level = \"debug\"\n[[auth_providers]]\ntype = \"homeassistant\"\n\n[http]\nlisten = \"0.0.0.0:8443\"\n";
        let config = parse(text).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(config.log_level, "info");
        assert_eq!(parse("").unwrap(), HttpConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_line() {
        let err = parse("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 4\n").unwrap_err();
        match err {
            ConfigError::Parse { line, message, .. } => {
                assert_eq!(line, 3, "{message}");
                assert!(message.contains("lisen"), "{message}");
            }
            other => panic!("{other}"),
        }
        let err = parse("[http]\n\ntrusted_proxies = [\"nope\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("\"nope\" is not an IP address"),
            "{err}"
        );
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn proxies_accept_addresses_and_networks() {
        let config = parse(
            "[http]\nuse_x_forwarded_for = true\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.trusted_proxies,
            vec![
                "127.0.0.1/32".parse::<IpNet>().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
    }

    #[test]
    fn values_that_cannot_work_are_refused() {
        for (text, key) in [
            ("use_x_forwarded_for = true", "trusted_proxies"),
            ("ssl_certificate = \"/c.pem\"", "ssl_key"),
            (
                "cors_allowed_origins = [\"https://a.example/path\"]",
                "cors_allowed_origins",
            ),
            ("max_body_bytes = 10", "max_body_bytes"),
            ("header_timeout_secs = 0", "header_timeout_secs"),
            (
                "max_login_flows_per_address = 0",
                "max_login_flows_per_address",
            ),
            ("log_level = \"info,[\"", "log_level"),
        ] {
            match parse(&format!("[http]\n{text}\n")) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn access_rules_keep_their_lines_and_bad_ones_are_named() {
        let text = "[http]\ndefault_policy = \"allow\"\n\n[[http.access]]\nhost = \"*.home.example\"\n\n[[http.access]]\nhost = \"grafana.home.example\"\npath = \"/admin/*\"\ngroups = [\"system-admin\"]\nsecond_factor = true\n";
        let config = parse(text).unwrap();
        assert_eq!(config.default_policy, Policy::Allow);
        let lines: Vec<usize> = config.access.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 7]);
        assert_eq!(
            config.access_findings(),
            vec![Finding::Unreachable { line: 7, by: 4 }]
        );
        let err = parse("[http]\n[[http.access]]\nhost = \"a b\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        for (text, key) in [
            ("public_url = \"https://auth.example/path\"", "public_url"),
            ("cookie_domain = \".home.example\"", "cookie_domain"),
            ("return_domains = [\"Home.Example\"]", "return_domains"),
        ] {
            match parse(&format!("[http]\n{text}\n")) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(parse("[http]\ndefault_policy = \"maybe\"\n").is_err());
    }
}
