//! How addresses are matched against networks: IPv4-mapped IPv6 is treated as IPv4.
//!
//! A dual-stack socket reports an IPv4 client as `::ffff:a.b.c.d`. Home Assistant
//! compares that IPv6 address with IPv4 networks and never finds it, so it silently
//! refuses real LAN clients. latch compares the IPv4 address inside instead:
//!
//! - [`canonical_ip`] turns a mapped address into its IPv4 form (IPv4-*compatible*
//!   addresses, `::a.b.c.d`, are left alone, as in `latch_models::is_local_address`);
//! - [`canonical_net`] turns a configured network that lies wholly inside
//!   `::ffff:0:0/96` into the IPv4 network it maps, so `::ffff:192.168.0.0/120` still
//!   means `192.168.0.0/24`;
//! - trusted networks and `trusted_users` networks are matched against the canonical
//!   address only; trusted proxies against the canonical **and** the address as given,
//!   so widening what counts as the same host can only add refusals there.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// The IPv4 address inside an IPv4-mapped IPv6 address, else the address unchanged.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The IPv4 network an IPv6 network inside `::ffff:0:0/96` maps, else the network
/// unchanged.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped);
    }
    net
}

/// True if the canonical form of `ip` is inside any of `nets` (which must already be
/// canonical).
pub(crate) fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// True if `ip` as given, or its canonical form, is inside any of `nets`.
pub(crate) fn in_any_either_form(nets: &[IpNet], ip: IpAddr) -> bool {
    let canonical = canonical_ip(ip);
    nets.iter()
        .any(|n| n.contains(&ip) || n.contains(&canonical))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_addresses_become_ipv4_and_others_stay() {
        assert_eq!(
            canonical_ip("::ffff:192.168.0.1".parse().unwrap()),
            "192.168.0.1".parse::<IpAddr>().unwrap()
        );
        for s in ["::1", "fd00::1", "::192.168.0.1", "10.0.0.1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(canonical_ip(ip), ip, "{s} must not change");
        }
    }

    #[test]
    fn mapped_networks_become_ipv4_networks() {
        assert_eq!(
            canonical_net(net("::ffff:192.168.0.0/120")),
            net("192.168.0.0/24")
        );
        assert_eq!(canonical_net(net("::ffff:0:0/96")), net("0.0.0.0/0"));
        assert_eq!(
            canonical_net(net("::ffff:10.0.0.1/128")),
            net("10.0.0.1/32")
        );
        for s in ["::/0", "::ffff:0:0/95", "fd00::/8", "192.168.0.0/16"] {
            assert_eq!(canonical_net(net(s)), net(s), "{s} must not change");
        }
    }

    #[test]
    fn proxy_matching_sees_both_forms() {
        let wide_v6 = [net("::/0")];
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(!in_any(&wide_v6, mapped));
        assert!(in_any_either_form(&wide_v6, mapped));
        let v4 = [net("10.0.0.0/8")];
        assert!(in_any(&v4, mapped));
        assert!(in_any_either_form(&v4, mapped));
    }

    proptest! {
        #[test]
        fn a_mapped_address_matches_exactly_where_its_ipv4_form_does(
            addr in any::<u32>(),
            base in any::<u32>(),
            prefix in 0u8..=32,
        ) {
            let v4 = Ipv4Addr::from(addr);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            let nets = [IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base), prefix).unwrap().trunc())];
            prop_assert_eq!(in_any(&nets, mapped), in_any(&nets, IpAddr::V4(v4)));
            prop_assert_eq!(
                in_any_either_form(&nets, mapped),
                in_any_either_form(&nets, IpAddr::V4(v4))
            );
        }

        #[test]
        fn canonical_mapped_networks_keep_their_members(
            addr in any::<u32>(),
            base in any::<u32>(),
            prefix in 96u8..=128,
        ) {
            let v6 = ipnet::Ipv6Net::new(Ipv4Addr::from(base).to_ipv6_mapped(), prefix)
                .unwrap()
                .trunc();
            let mapped = Ipv4Addr::from(addr).to_ipv6_mapped();
            let canonical = canonical_net(IpNet::V6(v6));
            prop_assert_eq!(
                v6.contains(&mapped),
                canonical.contains(&IpAddr::V4(Ipv4Addr::from(addr)))
            );
            prop_assert!(!canonical.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)));
        }
    }
}
