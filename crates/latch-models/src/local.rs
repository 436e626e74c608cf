//! Home Assistant's notion of a "local" address (`auth/helpers` `is_local`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for loopback, private and link-local addresses, including their IPv4-mapped
/// IPv6 forms (`::ffff:192.168.0.1`), exactly the ranges Home Assistant lists:
/// `127.0.0.0/8`, `::1/128`, `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`,
/// `fd00::/8`, `169.254.0.0/16`, `fe80::/10` and the mapped forms of the IPv4 ones.
#[must_use]
pub fn is_local_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_local_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = mapped_v4(v6) {
                return is_local_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6 == Ipv6Addr::LOCALHOST || (seg0 & 0xff00) == 0xfd00 || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

fn is_local_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    o[0] == 127
        || o[0] == 10
        || (o[0] == 172 && (16..=31).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 169 && o[1] == 254)
}

/// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) only;
/// IPv4-compatible addresses (`::a.b.c.d`) are deliberately not unwrapped.
fn mapped_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    v6.to_ipv4_mapped()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> bool {
        is_local_address(s.parse().unwrap())
    }

    #[test]
    fn local_ranges() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.5",
            "169.254.3.4",
            "::1",
            "fd01::1",
            "fe80::1",
            "::ffff:192.168.0.10",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:172.16.5.5",
            "::ffff:169.254.0.1",
        ] {
            assert!(local(ip), "{ip} should be local");
        }
    }

    #[test]
    fn non_local() {
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "192.167.0.1",
            "11.0.0.0",
            "2001:db8::1",
            "fc00::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!local(ip), "{ip} should not be local");
        }
    }
}
