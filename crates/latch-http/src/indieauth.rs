//! IndieAuth client ids and redirect URIs, by Home Assistant 2024.3's rules
//! (`homeassistant/components/auth/indieauth.py`; reference §4.6).
//!
//! Home Assistant parses URLs with Python's `urllib.parse.urlparse`, which is not a
//! WHATWG parser: it keeps the host and port as one `netloc` string, lower-cases only
//! that, and never drops a default port. This module ports `urlparse` (Python 3.11) so
//! the verdicts are Home Assistant's own, quirks included: a client id whose host is a
//! public IP address is refused, but one with a port (`http://8.8.8.8:80/`) is taken for
//! a domain name and accepted. Where Home Assistant raises instead of answering (an
//! empty host, a `<link>` without `href`) it answers HTTP 500; latch-http refuses.
//! `tests/fixtures/indieauth_2024_3.json` holds Home Assistant's verdicts on a list of
//! inputs, and the tests compare.
//!
//! The fetch of a client's page (for `<link rel="redirect_uri">`) is in `fetch.rs`;
//! here are the rules and the parsing of the page.

use std::net::IpAddr;

use latch_models::is_local_address;

/// The longest client id or redirect URI accepted (Home Assistant 2026's cap).
pub const MAX_URL_LEN: usize = 2048;

/// The parts of a URL as Python's `urlparse` splits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedUrl {
    /// Lower-cased scheme (empty if none).
    pub(crate) scheme: String,
    /// `user:pass@host:port` as written (lower-cased by [`parse_url`]).
    pub(crate) netloc: String,
    /// The path, without `;params`.
    pub(crate) path: String,
    /// The last path segment's `;params`.
    pub(crate) params: String,
    /// The query, without `?`.
    pub(crate) query: String,
    /// The fragment, without `#`.
    pub(crate) fragment: String,
}

/// A URL Python's `urlsplit` refuses (bad brackets around an IPv6 host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvalidUrl;

/// Schemes whose last path segment may carry `;params` (`urllib.parse.uses_params`).
const USES_PARAMS: [&str; 15] = [
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtspu", "sip", "sips",
    "mms", "sftp", "tel",
];

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// Python's `partition`: the text before the first `sep`, whether it was found, and the
/// text after it.
fn partition(s: &str, sep: char) -> (&str, bool, &str) {
    match s.split_once(sep) {
        Some((a, b)) => (a, true, b),
        None => (s, false, ""),
    }
}

/// Python's `rpartition`.
fn rpartition(s: &str, sep: char) -> (&str, bool, &str) {
    match s.rsplit_once(sep) {
        Some((a, b)) => (a, true, b),
        None => ("", false, s),
    }
}

/// `urllib.parse.urlsplit` followed by `urlparse`'s `;params` split (Python 3.11.7).
pub(crate) fn urlparse(url: &str) -> Result<ParsedUrl, InvalidUrl> {
    // Leading C0 controls and spaces go; tabs and line breaks go everywhere.
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = url.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':')
        && i > 0
        && rest.starts_with(|c: char| c.is_ascii_alphabetic())
        && rest[..i].chars().all(is_scheme_char)
    {
        scheme = rest[..i].to_ascii_lowercase();
        rest = &rest[i + 1..];
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..end];
        rest = &after[end..];
        let open = netloc.contains('[');
        let close = netloc.contains(']');
        if open != close {
            return Err(InvalidUrl);
        }
        if open && close {
            check_bracketed_netloc(netloc)?;
        }
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((a, f)) => (a, f),
        None => (rest, ""),
    };
    let (mut path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let mut params = "";
    if USES_PARAMS.contains(&scheme.as_str()) && path.contains(';') {
        let from = path.rfind('/').unwrap_or(0);
        if let Some(i) = path[from..].find(';').map(|i| i + from) {
            params = &path[i + 1..];
            path = &path[..i];
        }
    }
    Ok(ParsedUrl {
        scheme,
        netloc: netloc.to_owned(),
        path: path.to_owned(),
        params: params.to_owned(),
        query: query.to_owned(),
        fragment: fragment.to_owned(),
    })
}

/// `_check_bracketed_netloc`: a bracketed host must be an IPv6 address (or an
/// `IPvFuture`), with nothing before the bracket and only `:port` after it.
fn check_bracketed_netloc(netloc: &str) -> Result<(), InvalidUrl> {
    let (_, _, host_and_port) = rpartition(netloc, '@');
    let (before, open, bracketed) = partition(host_and_port, '[');
    let hostname = if open {
        if !before.is_empty() {
            return Err(InvalidUrl);
        }
        let (hostname, _, port) = partition(bracketed, ']');
        if !port.is_empty() && !port.starts_with(':') {
            return Err(InvalidUrl);
        }
        hostname
    } else {
        partition(host_and_port, ':').0
    };
    if let Some(future) = hostname.strip_prefix('v') {
        // \Av[a-fA-F0-9]+\..+\Z
        let (hex, dot, tail) = partition(future, '.');
        let ok = dot
            && !hex.is_empty()
            && hex.chars().all(|c| c.is_ascii_hexdigit())
            && !tail.is_empty()
            && !tail.contains('\n');
        return if ok { Ok(()) } else { Err(InvalidUrl) };
    }
    match hostname.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => Ok(()),
        _ => Err(InvalidUrl),
    }
}

impl ParsedUrl {
    /// `user:pass` before the last `@`, if there is an `@`.
    fn userinfo(&self) -> Option<&str> {
        let (info, found, _) = rpartition(&self.netloc, '@');
        found.then_some(info)
    }

    /// Python's `username`: `Some` (possibly empty) when the netloc has an `@`.
    pub(crate) fn username(&self) -> Option<&str> {
        self.userinfo().map(|info| partition(info, ':').0)
    }

    /// Python's `password`: `Some` when the user info has a `:`.
    pub(crate) fn password(&self) -> Option<&str> {
        self.userinfo().and_then(|info| {
            let (_, found, password) = partition(info, ':');
            found.then_some(password)
        })
    }

    /// The port text as Python's `_hostinfo` finds it (`None` if empty).
    fn port_text(&self) -> Option<&str> {
        let (_, _, hostinfo) = rpartition(&self.netloc, '@');
        let (_, open, bracketed) = partition(hostinfo, '[');
        let port = if open {
            let (_, _, after) = partition(bracketed, ']');
            partition(after, ':').2
        } else {
            partition(hostinfo, ':').2
        };
        (!port.is_empty()).then_some(port)
    }

    /// Python's `port`: `Err` when it is not ASCII digits or not in 0–65535.
    pub(crate) fn port(&self) -> Result<Option<u16>, InvalidUrl> {
        match self.port_text() {
            None => Ok(None),
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                let digits = p.trim_start_matches('0');
                if digits.len() > 5 {
                    return Err(InvalidUrl);
                }
                let value: u32 = if digits.is_empty() {
                    0
                } else {
                    digits.parse().map_err(|_| InvalidUrl)?
                };
                u16::try_from(value).map(Some).map_err(|_| InvalidUrl)
            }
            Some(_) => Err(InvalidUrl),
        }
    }
}

/// Home Assistant's `_parse_url`: `urlparse`, then the netloc lower-cased and an empty
/// path made `/` (IndieAuth §3.2 canonicalisation).
pub(crate) fn parse_url(url: &str) -> Result<ParsedUrl, InvalidUrl> {
    let mut parts = urlparse(url)?;
    parts.netloc = parts.netloc.to_lowercase();
    if parts.path.is_empty() {
        parts.path = "/".to_owned();
    }
    Ok(parts)
}

/// Home Assistant's `_parse_client_id`.
fn parse_client_id(client_id: &str) -> Result<ParsedUrl, InvalidUrl> {
    if client_id.len() > MAX_URL_LEN {
        return Err(InvalidUrl);
    }
    let parts = parse_url(client_id)?;
    if parts.scheme != "http" && parts.scheme != "https" {
        return Err(InvalidUrl);
    }
    if parts.path.split('/').any(|s| s == "." || s == "..") {
        return Err(InvalidUrl);
    }
    if !parts.fragment.is_empty() || parts.username().is_some() || parts.password().is_some() {
        return Err(InvalidUrl);
    }
    parts.port()?;
    // Home Assistant indexes `netloc[0]` here and fails with a 500 on an empty host.
    let netloc = parts.netloc.as_str();
    if netloc.is_empty() {
        return Err(InvalidUrl);
    }
    let host = netloc
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(netloc);
    match host.parse::<IpAddr>() {
        // A domain name (or anything with a port: Home Assistant parses the whole
        // netloc, port included, as an address).
        Err(_) => Ok(parts),
        Ok(ip) if is_local_address(ip) => Ok(parts),
        Ok(_) => Err(InvalidUrl),
    }
}

/// Whether `client_id` is a client id Home Assistant accepts: an `http(s)` URL without
/// fragment, user info, dot segments or a bad port, whose host is a domain name or a
/// local address.
#[must_use]
pub fn verify_client_id(client_id: &str) -> bool {
    parse_client_id(client_id).is_ok()
}

/// What the rules say about a redirect URI before any fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectVerdict {
    /// Allowed: same scheme and host as the client id, or one of the mobile apps'
    /// callbacks.
    Allowed,
    /// Refused: the client id or the redirect URI does not parse.
    Refused,
    /// Allowed only if the client's page lists it in a `<link rel="redirect_uri">`.
    NeedsDiscovery,
}

/// The mobile apps' callbacks Home Assistant allows without a fetch.
const APP_CALLBACKS: [(&str, &str); 4] = [
    (
        "https://home-assistant.io/iOS",
        "homeassistant://auth-callback",
    ),
    (
        "https://home-assistant.io/android",
        "homeassistant://auth-callback",
    ),
    (
        "https://home-assistant.io/android",
        "https://wear.googleapis.com/3p_auth/io.homeassistant.companion.android",
    ),
    (
        "https://home-assistant.io/android",
        "https://wear.googleapis-cn.com/3p_auth/io.homeassistant.companion.android",
    ),
];

/// Home Assistant's `verify_redirect_uri` up to the fetch.
#[must_use]
pub fn check_redirect_uri(client_id: &str, redirect_uri: &str) -> RedirectVerdict {
    let Ok(client) = parse_client_id(client_id) else {
        return RedirectVerdict::Refused;
    };
    if redirect_uri.len() > MAX_URL_LEN {
        return RedirectVerdict::Refused;
    }
    // (Home Assistant answers 500 for a redirect URI that urlparse refuses.)
    let Ok(redirect) = parse_url(redirect_uri) else {
        return RedirectVerdict::Refused;
    };
    if client.scheme == redirect.scheme && client.netloc == redirect.netloc {
        return RedirectVerdict::Allowed;
    }
    if APP_CALLBACKS.contains(&(client_id, redirect_uri)) {
        return RedirectVerdict::Allowed;
    }
    RedirectVerdict::NeedsDiscovery
}

/// The `href`s of `<link rel="redirect_uri">` tags in a page, in order (Home
/// Assistant's `LinkTagParser`: tag and attribute names in any case, `rel` exactly
/// `redirect_uri`, character references decoded). A tag without `href` is skipped
/// (Home Assistant fails on it).
#[must_use]
pub fn redirect_uri_links(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    for token in html5gum::Tokenizer::new(page).flatten() {
        let html5gum::Token::StartTag(tag) = token else {
            continue;
        };
        if tag.name.as_slice() != b"link" {
            continue;
        }
        let attr = |name: &[u8]| {
            tag.attributes
                .iter()
                .find(|(k, _)| k.as_slice() == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        if attr(b"rel").as_deref() == Some("redirect_uri")
            && let Some(href) = attr(b"href")
        {
            found.push(href);
        }
    }
    found
}

/// `urljoin(base, href)` for the discovered links (RFC 3986 resolution, as Python's
/// `urljoin` does for the forms pages use); `None` when either does not parse.
#[must_use]
pub fn join(base: &str, href: &str) -> Option<String> {
    let base = url::Url::parse(base).ok()?;
    base.join(href).ok().map(String::from)
}

/// Whether `redirect_uri` is among the links of the client's `page`, each resolved
/// against `client_id` (an exact match, as IndieAuth requires).
#[must_use]
pub fn page_lists(client_id: &str, page: &str, redirect_uri: &str) -> bool {
    redirect_uri_links(page)
        .iter()
        .filter_map(|href| join(client_id, href))
        .any(|uri| uri == redirect_uri)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/indieauth_2024_3.json"))
            .unwrap_or(Value::Null)
    }

    fn cases<'a>(fixture: &'a Value, key: &str) -> &'a [Value] {
        fixture[key].as_array().map_or(&[], Vec::as_slice)
    }

    #[test]
    fn client_ids_get_home_assistants_verdicts() {
        let fixture = fixture();
        let cases = cases(&fixture, "client_ids");
        assert!(cases.len() > 50);
        for case in cases {
            let client_id = case["client_id"].as_str().unwrap_or_default();
            // Home Assistant's "error" (a 500) is a refusal here.
            let expected = case["verdict"] == "valid";
            assert_eq!(verify_client_id(client_id), expected, "{client_id:?}");
        }
    }

    #[test]
    fn redirect_uris_get_home_assistants_verdicts() {
        let fixture = fixture();
        let cases = cases(&fixture, "redirects");
        assert!(cases.len() > 20);
        for case in cases {
            let client_id = case["client_id"].as_str().unwrap_or_default();
            let redirect = case["redirect_uri"].as_str().unwrap_or_default();
            let verdict = check_redirect_uri(client_id, redirect);
            // The fixture was taken with the fetch answering nothing.
            let expected = if case["verdict"] == "valid" {
                RedirectVerdict::Allowed
            } else if verify_client_id(client_id) && parse_url(redirect).is_ok() {
                RedirectVerdict::NeedsDiscovery
            } else {
                RedirectVerdict::Refused
            };
            assert_eq!(verdict, expected, "{client_id:?} → {redirect:?}");
        }
    }

    #[test]
    fn links_are_resolved_as_urljoin_resolves_them() {
        let fixture = fixture();
        for case in cases(&fixture, "joins") {
            let base = case["base"].as_str().unwrap_or_default();
            let href = case["href"].as_str().unwrap_or_default();
            assert_eq!(
                join(base, href).as_deref(),
                case["joined"].as_str(),
                "{base:?} + {href:?}"
            );
        }
    }

    #[test]
    fn link_tags_are_found_as_home_assistants_parser_finds_them() {
        let fixture = fixture();
        for case in cases(&fixture, "pages") {
            let page = case["page"].as_str().unwrap_or_default();
            // A link without href is skipped here (Home Assistant fails on it).
            let expected: Vec<String> = case["found"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(redirect_uri_links(page), expected, "{page:?}");
        }
    }

    #[test]
    fn urlparse_splits_as_python_does() {
        let p = urlparse("HTTPS://User:Pw@Example.COM:8123/a/b;p?q=1#f").unwrap_or_else(|_| {
            ParsedUrl {
                scheme: String::new(),
                netloc: String::new(),
                path: String::new(),
                params: String::new(),
                query: String::new(),
                fragment: String::new(),
            }
        });
        assert_eq!(p.scheme, "https");
        assert_eq!(p.netloc, "User:Pw@Example.COM:8123");
        assert_eq!(p.path, "/a/b");
        assert_eq!(p.params, "p");
        assert_eq!(p.query, "q=1");
        assert_eq!(p.fragment, "f");
        assert_eq!(p.username(), Some("User"));
        assert_eq!(p.password(), Some("Pw"));
        assert_eq!(p.port(), Ok(Some(8123)));
        assert_eq!(urlparse("http://[::1"), Err(InvalidUrl));
        assert_eq!(urlparse("http://[127.0.0.1]/"), Err(InvalidUrl));
        assert!(urlparse("http://[v1.x]/").is_ok());
    }

    #[test]
    fn page_lists_matches_resolved_links_exactly() {
        let page = r#"<link rel="redirect_uri" href="/cb"><link rel="redirect_uri" href="https://b.example/x">"#;
        assert!(page_lists(
            "https://a.example/app",
            page,
            "https://a.example/cb"
        ));
        assert!(page_lists(
            "https://a.example/app",
            page,
            "https://b.example/x"
        ));
        assert!(!page_lists(
            "https://a.example/app",
            page,
            "https://b.example/x/"
        ));
        assert!(!page_lists(
            "https://a.example/app",
            "",
            "https://a.example/cb"
        ));
    }

    #[test]
    fn overlong_urls_are_refused() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(!verify_client_id(&long));
        assert_eq!(
            check_redirect_uri("https://example.com/", &long),
            RedirectVerdict::Refused
        );
    }

    proptest::proptest! {
        #[test]
        fn the_parsers_never_panic(s in "\\PC{0,64}") {
            let _ = verify_client_id(&s);
            let _ = check_redirect_uri("https://example.com/app", &s);
            let _ = check_redirect_uri(&s, "https://example.com/cb");
            let _ = redirect_uri_links(&s);
        }

        #[test]
        fn an_accepted_client_id_is_http_or_https(s in "[a-zA-Z:/.\\[\\]@0-9?#%-]{0,40}") {
            if verify_client_id(&s) {
                let parts = parse_url(&s).unwrap_or_else(|_| unreachable!());
                proptest::prop_assert!(parts.scheme == "http" || parts.scheme == "https");
                proptest::prop_assert!(parts.fragment.is_empty());
            }
        }
    }
}
