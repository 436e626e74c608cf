//! Forward-auth access rules: `[[http.access]]` in the configuration, host and path
//! patterns that decide who may reach a protected site, first match wins, and
//! `[http] default_policy` when none matches.
//!
//! A pattern is text where `*` stands for any run of characters (dots and slashes
//! included): `*.home.example`, `/admin/*`. Hosts are compared without their port and
//! case-insensitively. A rule allows the users it names (by username) and the members of
//! the groups it names (by group id); a rule that names neither allows every signed-in
//! user, and `policy = "deny"` refuses everyone it matches. `second_factor = true` asks
//! for a session signed in with a second factor.
//!
//! [`lint`] finds what `--check-config` reports: rules no request can reach (an earlier
//! rule matches everything they match) and rules that partly overlap an earlier one
//! (some requests match both, neither contains the other: their order decides).

use serde::Deserialize;

/// The longest host pattern.
pub const MAX_HOST_PATTERN: usize = 253;
/// The longest path pattern.
pub const MAX_PATH_PATTERN: usize = 1024;
/// The longest username or group id in a rule.
pub const MAX_NAME: usize = 128;

/// What happens to a signed-in user when no rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Refused (403).
    #[default]
    Deny,
    /// Allowed.
    Allow,
}

/// One `[[http.access]]` rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Host pattern, e.g. `*.home.example`. Default `*`.
    #[serde(default = "star")]
    pub host: String,
    /// Path pattern, e.g. `/admin/*`. Default `*`.
    #[serde(default = "star")]
    pub path: String,
    /// `allow` (default) or `deny`.
    #[serde(default = "allow")]
    pub policy: Policy,
    /// Usernames allowed.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group ids allowed.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A session signed in with a second factor is required.
    #[serde(default)]
    pub second_factor: bool,
    /// The rule's line in the file (set by the parser, 0 when unknown).
    #[serde(skip)]
    pub line: usize,
}

fn star() -> String {
    "*".to_owned()
}

fn allow() -> Policy {
    Policy::Allow
}

/// Who is asking, as far as the rules care.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The username (or the user id when the user has none).
    pub username: &'a str,
    /// The group ids.
    pub groups: &'a [String],
    /// The session was signed in with a second factor.
    pub second_factor: bool,
}

/// The rules' answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Refuse it: the rule (its line, 0 for the default policy) does not allow this user.
    Deny {
        /// The deciding rule's line.
        line: usize,
    },
    /// The rule wants a second factor this session did not use.
    SecondFactorRequired {
        /// The deciding rule's line.
        line: usize,
    },
}

/// Whether `pattern` (with `*` wildcards) matches `text`.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Iterative wildcard matching with one backtrack point (linear for `*`-only patterns).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Whether every text `narrow` matches is matched by `wide` (exact for `*` patterns
/// when `wide`'s stars can absorb `narrow`'s).
fn covers(wide: &str, narrow: &str) -> bool {
    let (w, n) = (wide.as_bytes(), narrow.as_bytes());
    let mut memo = vec![vec![None; n.len() + 1]; w.len() + 1];
    covers_at(w, n, 0, 0, &mut memo)
}

fn covers_at(w: &[u8], n: &[u8], i: usize, j: usize, memo: &mut [Vec<Option<bool>>]) -> bool {
    if let Some(known) = memo[i][j] {
        return known;
    }
    let result = if i == w.len() {
        j == n.len()
    } else if w[i] == b'*' {
        // The wide star takes nothing, or one more symbol of the narrow pattern.
        covers_at(w, n, i + 1, j, memo) || (j < n.len() && covers_at(w, n, i, j + 1, memo))
    } else {
        j < n.len() && n[j] != b'*' && n[j] == w[i] && covers_at(w, n, i + 1, j + 1, memo)
    };
    memo[i][j] = Some(result);
    result
}

/// Whether some text matches both patterns.
fn intersects(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut memo = vec![vec![None; b.len() + 1]; a.len() + 1];
    intersects_at(a, b, 0, 0, &mut memo)
}

fn intersects_at(a: &[u8], b: &[u8], i: usize, j: usize, memo: &mut [Vec<Option<bool>>]) -> bool {
    if let Some(known) = memo[i][j] {
        return known;
    }
    let a_star = i < a.len() && a[i] == b'*';
    let b_star = j < b.len() && b[j] == b'*';
    let result = (i == a.len() && j == b.len())
        || (a_star && intersects_at(a, b, i + 1, j, memo))
        || (b_star && intersects_at(a, b, i, j + 1, memo))
        || (i < a.len() && j < b.len() && {
            if a_star && !b_star {
                intersects_at(a, b, i, j + 1, memo)
            } else if b_star && !a_star {
                intersects_at(a, b, i + 1, j, memo)
            } else {
                !a_star && a[i] == b[j] && intersects_at(a, b, i + 1, j + 1, memo)
            }
        });
    memo[i][j] = Some(result);
    result
}

/// The host without its port, lower-cased.
#[must_use]
pub fn bare_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    without_port.to_ascii_lowercase()
}

impl AccessRule {
    /// Whether this rule is about `host` (without port, lower case) and `path`.
    #[must_use]
    pub fn matches(&self, host: &str, path: &str) -> bool {
        glob_match(&self.host, host) && glob_match(&self.path, path)
    }

    fn admits(&self, subject: &Subject<'_>) -> bool {
        if self.policy == Policy::Deny {
            return false;
        }
        if self.users.is_empty() && self.groups.is_empty() {
            return true;
        }
        self.users.iter().any(|u| u == subject.username)
            || self.groups.iter().any(|g| subject.groups.contains(g))
    }

    /// What is wrong with the rule, if anything.
    ///
    /// # Errors
    /// A sentence naming the field.
    pub fn check(&mut self) -> Result<(), String> {
        self.host = self.host.to_ascii_lowercase();
        if self.host.is_empty()
            || self.host.len() > MAX_HOST_PATTERN
            || !self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_'))
        {
            return Err(format!(
                "host {:?} must be 1 to {MAX_HOST_PATTERN} characters of letters, digits, \
                 '.', '-', '_' and '*' (no port)",
                self.host
            ));
        }
        if self.path.is_empty()
            || self.path.len() > MAX_PATH_PATTERN
            || !(self.path.starts_with('/') || self.path.starts_with('*'))
            || self
                .path
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(format!(
                "path {:?} must start with '/' or '*', be at most {MAX_PATH_PATTERN} \
                 characters and hold no spaces or control characters",
                self.path
            ));
        }
        for (what, names) in [("users", &self.users), ("groups", &self.groups)] {
            for name in names {
                if name.is_empty()
                    || name.len() > MAX_NAME
                    || name.chars().any(|c| c.is_control() || c == ',')
                {
                    return Err(format!(
                        "{what} entry {name:?} must be 1 to {MAX_NAME} characters without \
                         commas or control characters"
                    ));
                }
            }
        }
        if self.policy == Policy::Deny
            && (!self.users.is_empty() || !self.groups.is_empty() || self.second_factor)
        {
            return Err(
                "a rule with policy = \"deny\" refuses everyone it matches: drop its users, \
                 groups and second_factor"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The rules in order, and the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// The rules, first match wins.
    pub rules: Vec<AccessRule>,
    /// When none matches.
    pub default_policy: Policy,
}

impl AccessRules {
    /// The rule that decides for `host` (any case, port allowed) and `path`.
    #[must_use]
    pub fn rule_for(&self, host: &str, path: &str) -> Option<&AccessRule> {
        let host = bare_host(host);
        self.rules.iter().find(|r| r.matches(&host, path))
    }

    /// Decides for a signed-in `subject` asking for `host` and `path`.
    #[must_use]
    pub fn decide(&self, host: &str, path: &str, subject: &Subject<'_>) -> Decision {
        match self.rule_for(host, path) {
            Some(rule) if !rule.admits(subject) => Decision::Deny { line: rule.line },
            Some(rule) if rule.second_factor && !subject.second_factor => {
                Decision::SecondFactorRequired { line: rule.line }
            }
            Some(_) => Decision::Allow,
            None => match self.default_policy {
                Policy::Allow => Decision::Allow,
                Policy::Deny => Decision::Deny { line: 0 },
            },
        }
    }
}

/// Something `--check-config` reports about the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// No request can reach the rule at `line`: the rule at `by` matches all it matches.
    Unreachable {
        /// The unreachable rule's line.
        line: usize,
        /// The earlier, broader rule's line.
        by: usize,
    },
    /// Some requests match both rules and neither contains the other: the earlier wins.
    Overlap {
        /// The later rule's line.
        line: usize,
        /// The earlier rule's line.
        with: usize,
    },
}

impl Finding {
    /// True for findings that make the configuration invalid.
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { line, by } => write!(
                f,
                "the access rule at line {line} is unreachable: the rule at line {by} comes \
                 first and matches every request it matches"
            ),
            Self::Overlap { line, with } => write!(
                f,
                "the access rule at line {line} overlaps the rule at line {with}: requests \
                 matching both are decided by the rule at line {with}"
            ),
        }
    }
}

/// The rules' unreachable and partly overlapping pairs.
#[must_use]
pub fn lint(rules: &[AccessRule]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (j, later) in rules.iter().enumerate() {
        let shadow = rules[..j].iter().find(|earlier| {
            covers(&earlier.host, &later.host) && covers(&earlier.path, &later.path)
        });
        if let Some(earlier) = shadow {
            findings.push(Finding::Unreachable {
                line: later.line,
                by: earlier.line,
            });
            continue;
        }
        for earlier in &rules[..j] {
            let meet =
                intersects(&earlier.host, &later.host) && intersects(&earlier.path, &later.path);
            let later_contains =
                covers(&later.host, &earlier.host) && covers(&later.path, &earlier.path);
            if meet && !later_contains {
                findings.push(Finding::Overlap {
                    line: later.line,
                    with: earlier.line,
                });
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rule(host: &str, path: &str, line: usize) -> AccessRule {
        AccessRule {
            host: host.into(),
            path: path.into(),
            policy: Policy::Allow,
            users: vec![],
            groups: vec![],
            second_factor: false,
            line,
        }
    }

    #[test]
    fn globs_match_any_run_of_characters() {
        assert!(glob_match("*.home.example", "a.home.example"));
        assert!(glob_match("*.home.example", "a.b.home.example"));
        assert!(!glob_match("*.home.example", "home.example"));
        assert!(glob_match("/admin/*", "/admin/x/y?z=1"));
        assert!(!glob_match("/admin/*", "/admin"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYbc"));
        assert!(!glob_match("a*b*c", "aXbY"));
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(bare_host("App.Home.Example:8443"), "app.home.example");
        assert_eq!(bare_host("[::1]:80"), "::1");
        assert_eq!(bare_host("localhost"), "localhost");
    }

    #[test]
    fn first_match_wins_then_the_default() {
        let mut admin = rule("*.home.example", "/admin/*", 3);
        admin.groups = vec!["system-admin".into()];
        admin.second_factor = true;
        let mut anne = rule("grafana.home.example", "*", 9);
        anne.users = vec!["anne".into()];
        let rules = AccessRules {
            rules: vec![admin, anne],
            default_policy: Policy::Deny,
        };
        let groups = vec!["system-users".to_owned()];
        let anne_1fa = Subject {
            username: "anne",
            groups: &groups,
            second_factor: false,
        };
        assert_eq!(
            rules.decide("grafana.home.example", "/admin/x", &anne_1fa),
            Decision::Deny { line: 3 }
        );
        assert_eq!(
            rules.decide("Grafana.home.example:443", "/d", &anne_1fa),
            Decision::Allow
        );
        assert_eq!(
            rules.decide("other.example", "/", &anne_1fa),
            Decision::Deny { line: 0 }
        );
        let admins = vec!["system-admin".to_owned()];
        let paulus = Subject {
            username: "paulus",
            groups: &admins,
            second_factor: false,
        };
        assert_eq!(
            rules.decide("x.home.example", "/admin/", &paulus),
            Decision::SecondFactorRequired { line: 3 }
        );
        let paulus_2fa = Subject {
            second_factor: true,
            ..paulus
        };
        assert_eq!(
            rules.decide("x.home.example", "/admin/", &paulus_2fa),
            Decision::Allow
        );
        let open = AccessRules {
            rules: vec![],
            default_policy: Policy::Allow,
        };
        assert_eq!(open.decide("x", "/", &paulus), Decision::Allow);
    }

    #[test]
    fn deny_rules_refuse_everyone() {
        let mut deny = rule("*", "/private/*", 1);
        deny.policy = Policy::Deny;
        let rules = AccessRules {
            rules: vec![deny.clone()],
            default_policy: Policy::Allow,
        };
        let subject = Subject {
            username: "paulus",
            groups: &[],
            second_factor: true,
        };
        assert_eq!(
            rules.decide("a", "/private/x", &subject),
            Decision::Deny { line: 1 }
        );
        deny.users = vec!["anne".into()];
        assert!(deny.check().is_err());
    }

    #[test]
    fn bad_rules_are_named() {
        for (host, path) in [
            ("a.example:80", "*"),
            ("", "*"),
            ("a b", "*"),
            ("a", "admin"),
            ("a", "/a b"),
        ] {
            assert!(rule(host, path, 1).check().is_err(), "{host} {path}");
        }
        let mut upper = rule("A.Example", "/", 1);
        upper.check().unwrap();
        assert_eq!(upper.host, "a.example");
        let mut comma = rule("a", "/", 1);
        comma.users = vec!["a,b".into()];
        assert!(comma.check().is_err());
    }

    #[test]
    fn lint_finds_unreachable_and_overlapping_rules() {
        let rules = vec![
            rule("*.home.example", "*", 2),
            rule("grafana.home.example", "/admin/*", 6),
            rule("grafana.*", "/api/*", 10),
            rule("*", "*", 14),
        ];
        assert_eq!(
            lint(&rules),
            vec![
                Finding::Unreachable { line: 6, by: 2 },
                Finding::Overlap { line: 10, with: 2 },
            ]
        );
        // Specific before general is the normal order: nothing to report.
        let ordered = vec![rule("a.example", "/admin/*", 1), rule("*", "*", 2)];
        assert!(lint(&ordered).is_empty());
        // Disjoint rules are fine in any order.
        let disjoint = vec![rule("a.example", "*", 1), rule("b.example", "*", 2)];
        assert!(lint(&disjoint).is_empty());
    }

    fn pattern() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab*]{0,6}").unwrap()
    }

    proptest! {
        /// `covers` never claims a containment a text disproves, and `intersects` never
        /// denies a common text.
        #[test]
        fn coverage_and_intersection_agree_with_matching(
            a in pattern(), b in pattern(), text in "[ab]{0,7}"
        ) {
            if covers(&a, &b) && glob_match(&b, &text) {
                prop_assert!(glob_match(&a, &text));
            }
            if glob_match(&a, &text) && glob_match(&b, &text) {
                prop_assert!(intersects(&a, &b));
            }
        }
    }
}
