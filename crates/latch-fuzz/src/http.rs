//! What latch-http reads from the network before latchd sees anything: IndieAuth client
//! ids and redirect URIs (a port of Python's `urlparse`), a client's page
//! (`<link rel="redirect_uri">` tags), and `X-Forwarded-*` headers.

use std::net::IpAddr;

use latch_http::forwarded::{HeaderMap, IpNet, ProxyRules, resolve};
use latch_http::indieauth::{
    RedirectVerdict, check_redirect_uri, join, page_lists, redirect_uri_links, verify_client_id,
};

/// The input as text is tried as a client id, as a redirect URI for a fixed client (and
/// the other way round), as a client's page, and as the values of the three forwarded
/// headers from a trusted proxy.
///
/// Nothing panics; an accepted client id is an `http(s)` URL; a redirect URI on the
/// client id's own scheme and host is allowed when the client id is valid; every link a
/// page lists is found again by [`page_lists`]; a resolved client address is the peer
/// or one of the addresses in `X-Forwarded-For`.
pub fn http_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    if verify_client_id(text) {
        // What urlparse reads: tabs and line breaks dropped, leading controls and spaces.
        let read: String = text
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        let read = read
            .trim_start_matches(|c: char| c <= ' ')
            .to_ascii_lowercase();
        assert!(
            read.starts_with("http:") || read.starts_with("https:"),
            "client id {text:?} accepted without an http(s) scheme"
        );
        let fragment = read.split_once('#').map_or("", |(_, f)| f);
        assert!(fragment.is_empty(), "a fragment accepted: {text:?}");
    }
    let _ = check_redirect_uri("https://example.com/app", text);
    let _ = check_redirect_uri(text, "https://example.com/app/callback");
    if verify_client_id(text) && !text.contains(['\t', '\r', '\n']) {
        // The client's own origin is always allowed.
        let own = check_redirect_uri(text, text);
        assert_eq!(
            own,
            RedirectVerdict::Allowed,
            "{text:?} refused as its own redirect"
        );
    }

    let base = "https://example.com/app";
    for href in redirect_uri_links(text) {
        if let Some(uri) = join(base, &href) {
            assert!(page_lists(base, text, &uri), "{uri:?} listed but not found");
        }
    }

    let rules = ProxyRules {
        use_x_forwarded_for: true,
        trusted_proxies: vec![ipnet_of("127.0.0.0/8")],
    };
    let mut lines = text.lines();
    let mut headers = HeaderMap::new();
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        if let Some(line) = lines.next()
            && let Ok(value) = line.parse()
        {
            headers.append(name, value);
        }
    }
    let peer = IpAddr::from([127, 0, 0, 1]);
    if let Ok(client) = resolve(peer, &headers, &rules) {
        let listed = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|a| a.trim().parse::<IpAddr>() == Ok(client.ip))
            });
        assert!(
            client.ip == peer || listed,
            "{} came from nowhere",
            client.ip
        );
    }
}

fn ipnet_of(net: &str) -> IpNet {
    match net.parse() {
        Ok(net) => net,
        Err(e) => panic!("{net}: {e}"),
    }
}
