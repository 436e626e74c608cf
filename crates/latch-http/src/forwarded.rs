//! The client's real address: the TCP peer, or `X-Forwarded-For` when the peer is a
//! trusted proxy, by the rules of Home Assistant 2024.3's `http` integration
//! (`homeassistant/components/http/forwarded.py`).
//!
//! - No `X-Forwarded-For`: the peer is the client; `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are ignored.
//! - `X-Forwarded-For` with `use_x_forwarded_for` off, or from a peer outside
//!   `trusted_proxies`: refused (Home Assistant's 400).
//! - More than one `X-Forwarded-For`, `-Proto` or `-Host` header, an entry that is not an
//!   IP address, an empty proto entry, a proto list whose length is neither 1 nor the
//!   address list's, an empty host: refused.
//! - Otherwise the list is read from the right, trusted proxies skipped: the first
//!   untrusted address is the client, or the leftmost when all are trusted.
//!
//! One deliberate difference: an IPv4 peer on a dual-stack socket (`::ffff:a.b.c.d`) is
//! taken as the IPv4 address it is, so `trusted_proxies = ["127.0.0.1"]` matches it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub use axum::http::HeaderMap;
pub use ipnet::IpNet;

/// The proxy rules (`[http]` `use_x_forwarded_for`, `trusted_proxies`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyRules {
    /// Read `X-Forwarded-For` at all.
    pub use_x_forwarded_for: bool,
    /// The peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl ProxyRules {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// Where a request really comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address.
    pub ip: IpAddr,
    /// The scheme the client used, from `X-Forwarded-Proto`.
    pub scheme: Option<String>,
    /// The host the client asked for, from `X-Forwarded-Host`.
    pub host: Option<String>,
}

/// Why forwarded headers were refused. Each is logged as Home Assistant logs it and
/// answered 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedError {
    /// A proxy sent the header but proxies are not configured.
    #[error(
        "A request from a reverse proxy was received from {0}, but your HTTP integration is not set-up for reverse proxies"
    )]
    NotConfigured(IpAddr),
    /// The peer is not a trusted proxy.
    #[error("Received X-Forwarded-For header from an untrusted proxy {0}")]
    UntrustedProxy(IpAddr),
    /// The header appears more than once.
    #[error("Too many headers for {0}")]
    TooManyHeaders(&'static str),
    /// An entry is not an IP address.
    #[error("Invalid IP address in X-Forwarded-For: {0}")]
    InvalidAddress(String),
    /// An empty entry in `X-Forwarded-Proto`.
    #[error("Empty item received in X-Forward-Proto header: {0}")]
    EmptyProto(String),
    /// `X-Forwarded-Proto` has neither one entry nor one per address.
    #[error("Incorrect number of elements in X-Forward-Proto. Expected 1 or {expected}, got {got}")]
    ProtoCount {
        /// Entries in `X-Forwarded-For`.
        expected: usize,
        /// Entries in `X-Forwarded-Proto`.
        got: usize,
    },
    /// An empty `X-Forwarded-Host`.
    #[error("Empty value received in X-Forward-Host header")]
    EmptyHost,
    /// A header value that is not text.
    #[error("{0} is not valid text")]
    NotText(&'static str),
}

/// The one value of `name`, if any; an error when it appears more than once.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, ForwardedError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ForwardedError::TooManyHeaders(name));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ForwardedError::NotText(name))
}

/// The IPv4 address an IPv4-mapped peer is, else the peer.
#[must_use]
pub fn peer_ip(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// The client behind a request from `peer` with `headers`.
///
/// # Errors
/// A [`ForwardedError`] when the forwarded headers are refused.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    rules: &ProxyRules,
) -> Result<ClientAddr, ForwardedError> {
    let direct = ClientAddr {
        ip: peer,
        scheme: None,
        host: None,
    };
    if headers.get("x-forwarded-for").is_none() {
        return Ok(direct);
    }
    if !rules.use_x_forwarded_for {
        return Err(ForwardedError::NotConfigured(peer));
    }
    if !rules.trusted(peer) {
        return Err(ForwardedError::UntrustedProxy(peer));
    }
    let Some(value) = single(headers, "x-forwarded-for")? else {
        return Ok(direct);
    };
    // Read from the right.
    let forwarded: Vec<IpAddr> = value
        .rsplit(',')
        .map(|a| a.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .map_err(|_| ForwardedError::InvalidAddress(value.to_owned()))?;
    let untrusted = forwarded.iter().position(|ip| !rules.trusted(*ip));
    let (ip, index) = match untrusted {
        Some(i) => (forwarded[i], i),
        None => (forwarded[forwarded.len() - 1], forwarded.len() - 1),
    };
    let mut client = ClientAddr {
        ip,
        scheme: None,
        host: None,
    };
    if let Some(value) = single(headers, "x-forwarded-proto")? {
        let protos: Vec<&str> = value.rsplit(',').map(str::trim).collect();
        if protos.contains(&"") {
            return Err(ForwardedError::EmptyProto(value.to_owned()));
        }
        if protos.len() != 1 && protos.len() != forwarded.len() {
            return Err(ForwardedError::ProtoCount {
                expected: forwarded.len(),
                got: protos.len(),
            });
        }
        let scheme = if protos.len() == 1 {
            protos[0]
        } else {
            protos[index]
        };
        client.scheme = Some(scheme.to_owned());
    }
    if let Some(value) = single(headers, "x-forwarded-host")? {
        let host = value.trim();
        if host.is_empty() {
            return Err(ForwardedError::EmptyHost);
        }
        client.host = Some(host.to_owned());
    }
    Ok(client)
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn rules() -> ProxyRules {
        ProxyRules {
            use_x_forwarded_for: true,
            trusted_proxies: vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_the_header_the_peer_is_the_client() {
        let got = resolve(
            ip("203.0.113.9"),
            &headers(&[("x-forwarded-proto", "https")]),
            &ProxyRules::default(),
        )
        .unwrap();
        assert_eq!(got.ip, ip("203.0.113.9"));
        assert_eq!(got.scheme, None);
    }

    #[test]
    fn the_first_untrusted_address_from_the_right_is_the_client() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 192.168.1.20, 10.1.1.1")]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &h, &rules()).unwrap().ip,
            ip("192.168.1.20")
        );
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.1.1.1")]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &h, &rules()).unwrap().ip,
            ip("10.0.0.5")
        );
    }

    #[test]
    fn refusals() {
        let h = headers(&[("x-forwarded-for", "192.168.1.20")]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &h, &ProxyRules::default()),
            Err(ForwardedError::NotConfigured(ip("127.0.0.1")))
        );
        assert_eq!(
            resolve(ip("127.0.0.2"), &h, &rules()),
            Err(ForwardedError::UntrustedProxy(ip("127.0.0.2")))
        );
        let two = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
        ]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &two, &rules()),
            Err(ForwardedError::TooManyHeaders("x-forwarded-for"))
        );
        let bad = headers(&[("x-forwarded-for", "1.2.3.4, nope")]);
        assert!(matches!(
            resolve(ip("127.0.0.1"), &bad, &rules()),
            Err(ForwardedError::InvalidAddress(_))
        ));
        let empty = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-host", " ")]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &empty, &rules()),
            Err(ForwardedError::EmptyHost)
        );
        let protos = headers(&[
            ("x-forwarded-for", "1.2.3.4, 10.0.0.1"),
            ("x-forwarded-proto", "https, http, http"),
        ]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &protos, &rules()),
            Err(ForwardedError::ProtoCount {
                expected: 2,
                got: 3
            })
        );
        let empty_proto = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https,"),
        ]);
        assert!(matches!(
            resolve(ip("127.0.0.1"), &empty_proto, &rules()),
            Err(ForwardedError::EmptyProto(_))
        ));
    }

    #[test]
    fn proto_follows_the_chosen_address_and_host_is_taken() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", " home.example "),
        ]);
        let got = resolve(ip("127.0.0.1"), &h, &rules()).unwrap();
        assert_eq!(got.ip, ip("203.0.113.9"));
        assert_eq!(got.scheme.as_deref(), Some("https"));
        assert_eq!(got.host.as_deref(), Some("home.example"));
        let one = headers(&[
            ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            resolve(ip("127.0.0.1"), &one, &rules())
                .unwrap()
                .scheme
                .as_deref(),
            Some("https")
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address() {
        let peer: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        assert_eq!(peer_ip(peer), ip("127.0.0.1"));
    }

    proptest::proptest! {
        #[test]
        fn any_header_text_is_answered_without_panic(v in "\\PC{0,80}") {
            if let Ok(value) = HeaderValue::from_str(&v) {
                let mut h = HeaderMap::new();
                h.insert("x-forwarded-for", value.clone());
                h.insert("x-forwarded-proto", value.clone());
                h.insert("x-forwarded-host", value);
                let _ = resolve(ip("127.0.0.1"), &h, &rules());
            }
        }
    }
}
