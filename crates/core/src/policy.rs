//! Which addresses checks and webhooks may connect to.
//!
//! - `default`: everything but cloud metadata endpoints and link-local
//!   ranges (169.254.0.0/16 with 169.254.169.254, fe80::/10, fd00:ec2::254).
//!   Private networks stay allowed: self-hosted monitors watch intranets.
//! - `public-only`, for shared deployments: also loopback, RFC 1918, CGNAT,
//!   ULA, unspecified, multicast, broadcast, documentation and benchmarking
//!   ranges.
//!
//! Under both, an IPv6 address that carries an IPv4 address (IPv4-mapped,
//! SIIT, IPv4-compatible, NAT64 including local-use `64:ff9b:1::/48`, 6to4,
//! Teredo server and client) is blocked when that IPv4 address is.
//!
//! The worker applies this to every address it connects to, after DNS
//! resolution and on every redirect hop.
//!
//! Whatever the policy, Pulse's own services are refused: the addresses of
//! its Postgres, Redis, ClickHouse and API (and the worker's health port),
//! read from the settings and resolved at start ([`protect_own`]). A check
//! could otherwise write to Redis with a TCP `send` or run SQL through
//! ClickHouse's HTTP port. A service on a loopback or unspecified address
//! is matched on every loopback address at its port (`localhost:6379`,
//! `127.0.0.2:6379`, `[::1]:6379`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::RwLock;

/// The socket addresses of Pulse's own services in this process, each
/// with the number of live [`Protected`] guards that hold it.
static OWN: RwLock<Vec<(SocketAddr, usize)>> = RwLock::new(Vec::new());

/// Keeps addresses among the services checks may never reach while it
/// lives (a server's listener is released when the server stops, so a test
/// process that starts many servers does not block ports they left).
#[must_use = "the addresses are protected only while the guard lives"]
#[derive(Debug)]
pub struct Protected(Vec<SocketAddr>);

impl Protected {
    /// Never releases the addresses (the process's own services).
    pub fn forever(self) {
        std::mem::forget(self);
    }
}

impl Drop for Protected {
    fn drop(&mut self) {
        let mut own = OWN.write().unwrap_or_else(|e| e.into_inner());
        for a in &self.0 {
            if let Some(i) = own.iter().position(|(o, _)| o == a) {
                own[i].1 -= 1;
                if own[i].1 == 0 {
                    own.swap_remove(i);
                }
            }
        }
    }
}

/// Adds `addrs` to the services checks may never reach, until the guard
/// is dropped. Both binaries call it at start; several applications in one
/// process (tests) add up.
pub fn protect_own(addrs: impl IntoIterator<Item = SocketAddr>) -> Protected {
    let mut own = OWN.write().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    for a in addrs {
        if held.contains(&a) {
            continue;
        }
        match own.iter_mut().find(|(o, _)| *o == a) {
            Some((_, n)) => *n += 1,
            None => own.push((a, 1)),
        }
        held.push(a);
    }
    Protected(held)
}

fn is_local(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified()
}

/// Whether `addr` is one of Pulse's own services.
pub fn is_own_service(addr: SocketAddr) -> bool {
    let own = OWN.read().unwrap_or_else(|e| e.into_inner());
    own.iter().any(|(o, _)| {
        o.port() == addr.port()
            && (o.ip() == addr.ip() || (is_local(o.ip()) && is_local(addr.ip())))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetPolicy {
    #[default]
    Default,
    PublicOnly,
}

impl FromStr for TargetPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(TargetPolicy::Default),
            "public-only" => Ok(TargetPolicy::PublicOnly),
            other => Err(format!("{other:?}: use default or public-only")),
        }
    }
}

impl TargetPolicy {
    /// Why `addr` may not be reached, if it may not: one of Pulse's own
    /// services (whatever the policy), or an address the policy refuses.
    pub fn blocks_socket(self, addr: SocketAddr) -> Option<String> {
        if is_own_service(addr) {
            return Some(own_service_message(addr));
        }
        self.blocks(addr.ip())
            .map(|why| format!("blocked by target policy: {} is {why}", addr.ip()))
    }

    /// Why `ip` may not be reached, if it may not.
    pub fn blocks(self, ip: IpAddr) -> Option<&'static str> {
        match ip {
            IpAddr::V4(v4) => self.blocks_v4(v4),
            IpAddr::V6(v6) => self.blocks_v6(v6),
        }
    }

    fn blocks_v4(self, ip: Ipv4Addr) -> Option<&'static str> {
        let o = ip.octets();
        if o[0] == 169 && o[1] == 254 {
            return Some(if o == [169, 254, 169, 254] {
                "a cloud metadata address"
            } else {
                "a link-local address"
            });
        }
        if self == TargetPolicy::Default {
            return None;
        }
        if ip.is_loopback() {
            Some("a loopback address")
        } else if ip.is_private() {
            Some("a private (RFC 1918) address")
        } else if o[0] == 100 && (64..128).contains(&o[1]) {
            Some("a shared (CGNAT) address")
        } else if o[0] == 0 {
            Some("an unspecified address")
        } else if ip.is_multicast() || o[0] >= 240 {
            Some("a multicast, reserved or broadcast address")
        } else if ip.is_documentation() || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) {
            Some("a documentation or benchmarking address")
        } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
            Some("an IETF protocol assignment")
        } else {
            None
        }
    }

    fn blocks_v6(self, ip: Ipv6Addr) -> Option<&'static str> {
        let s = ip.segments();
        if s[0] & 0xffc0 == 0xfe80 {
            return Some("a link-local address");
        }
        if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            return Some("a cloud metadata address");
        }
        // Forms that carry an IPv4 address: judge that address.
        let embedded = embedded_v4(ip);
        for v4 in embedded.iter().flatten() {
            if let Some(why) = self.blocks_v4(*v4) {
                return Some(why);
            }
        }
        if self == TargetPolicy::Default {
            return None;
        }
        if ip.is_loopback() {
            Some("a loopback address")
        } else if ip.is_unspecified() {
            Some("an unspecified address")
        } else if s[0] & 0xfe00 == 0xfc00 {
            Some("a unique local (ULA) address")
        } else if ip.is_multicast() {
            Some("a multicast address")
        } else if s[0] == 0x2001 && s[1] == 0xdb8 {
            Some("a documentation address")
        } else if embedded[0].is_some() && s[0] == 0 {
            Some("an IPv4-mapped or IPv4-compatible address")
        } else {
            None
        }
    }

    /// Checks a URL's host when it is an IP literal (names are checked
    /// when they resolve). The URL parser has already turned decimal, octal
    /// and hex IPv4 forms into plain addresses.
    pub fn blocks_url(self, url: &url::Url) -> Option<String> {
        self.blocks_host(&url.host()?, url.port_or_known_default())
    }

    /// Checks a host (and the port, when known) before any lookup: an IP
    /// literal against the policy and Pulse's own services; `localhost`
    /// (and `*.localhost`, RFC 6761: always loopback) against Pulse's own
    /// services only, since like any name it meets the policy when it
    /// resolves; other names not at all.
    pub fn blocks_host(self, host: &url::Host<&str>, port: Option<u16>) -> Option<String> {
        let ip = match *host {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(d) if is_localhost(d) => {
                let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port?);
                return is_own_service(addr).then(|| own_service_message(addr));
            }
            url::Host::Domain(_) => return None,
        };
        match port {
            Some(port) => self.blocks_socket(SocketAddr::new(ip, port)),
            None => self
                .blocks(ip)
                .map(|why| format!("blocked by target policy: {ip} is {why}")),
        }
    }
}

fn own_service_message(addr: SocketAddr) -> String {
    format!(
        "blocked: {addr} is one of Pulse's own services (its database, queue, results \
         store or API)"
    )
}

/// `localhost` or a name under it (RFC 6761: always loopback).
pub fn is_localhost(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost" || n.ends_with(".localhost")
}

/// The IPv4 addresses an IPv6 address carries, in the forms that reach an
/// IPv4 host: IPv4-mapped (`::ffff:0:0/96`), SIIT (`::ffff:0:0:0/96`),
/// IPv4-compatible (`::/96`), NAT64 (`64:ff9b::/96` and the local-use
/// `64:ff9b:1::/48`, RFC 8215, IPv4 in the last 32 bits), 6to4
/// (`2002::/16`) and Teredo (`2001::/32`: the server in bits 32..64, the
/// client in bits 96..128 inverted).
fn embedded_v4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let siit = s[..6] == [0, 0, 0, 0, 0xffff, 0];
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1);
    let compatible = s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified();
    if let Some(v4) = ip.to_ipv4_mapped() {
        [Some(v4), None]
    } else if siit || nat64 || compatible {
        [Some(v4(s[6], s[7])), None]
    } else if s[0] == 0x2002 {
        [Some(v4(s[1], s[2])), None]
    } else if s[0] == 0x2001 && s[1] == 0 {
        [Some(v4(s[2], s[3])), Some(v4(!s[6], !s[7]))]
    } else {
        [None, None]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn url_blocked(policy: TargetPolicy, u: &str) -> bool {
        policy.blocks_url(&url::Url::parse(u).unwrap()).is_some()
    }

    #[test]
    fn pulse_own_services_are_blocked_on_every_loopback_spelling_while_protected() {
        // A port no other test in this crate uses: the set is process-wide.
        let guard = protect_own(["127.0.0.1:59999".parse().unwrap()]);
        let other = protect_own(["10.1.2.3:59997".parse().unwrap()]);
        for policy in [TargetPolicy::Default] {
            for u in [
                "http://127.0.0.1:59999/",
                "http://localhost:59999/x",
                "http://app.localhost:59999/",
                "http://[::1]:59999/",
                "http://0.0.0.0:59999/",
                "http://127.0.0.2:59999/",
                "http://10.1.2.3:59997/",
            ] {
                assert!(url_blocked(policy, u), "{policy:?} {u}");
            }
            for u in [
                "http://127.0.0.1:59998/",
                "http://10.1.2.4:59997/",
                "http://10.1.2.3:59999/",
            ] {
                assert!(!url_blocked(policy, u), "{policy:?} {u}");
            }
        }
        let why = TargetPolicy::Default
            .blocks_socket("[::ffff:127.0.0.1]:59999".parse().unwrap())
            .unwrap();
        assert!(why.contains("Pulse's own services"), "{why}");
        drop(guard);
        drop(other);
        assert!(!url_blocked(
            TargetPolicy::Default,
            "http://127.0.0.1:59999/"
        ));
        assert!(!url_blocked(
            TargetPolicy::Default,
            "http://10.1.2.3:59997/"
        ));
    }

    #[test]
    fn the_default_blocks_metadata_and_link_local_only() {
        let p = TargetPolicy::Default;
        for blocked in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(p.blocks(ip(blocked)).is_some(), "{blocked}");
        }
        for allowed in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.1.1",
            "::1",
            "fd12::1",
            "8.8.8.8",
        ] {
            assert!(p.blocks(ip(allowed)).is_none(), "{allowed}");
        }
    }

    #[test]
    fn public_only_blocks_every_internal_range() {
        let p = TargetPolicy::PublicOnly;
        for blocked in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "169.254.169.254",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001:db8::1",
        ] {
            assert!(p.blocks(ip(blocked)).is_some(), "{blocked}");
        }
        // IPv4-mapped forms are refused outright, whatever they embed.
        assert!(p.blocks(ip("::ffff:8.8.8.8")).is_some());
        for allowed in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111"] {
            assert!(p.blocks(ip(allowed)).is_none(), "{allowed}");
        }
    }

    #[test]
    fn siit_addresses_are_judged_by_the_ipv4_they_carry() {
        // ::ffff:0:a.b.c.d
        assert!(TargetPolicy::Default
            .blocks(ip("::ffff:0:169.254.169.254"))
            .is_some());
        assert!(TargetPolicy::PublicOnly
            .blocks(ip("::ffff:0:127.0.0.1"))
            .is_some());
        assert!(TargetPolicy::Default
            .blocks(ip("::ffff:0:8.8.8.8"))
            .is_none());
    }

    #[test]
    fn local_use_nat64_addresses_are_judged_by_their_last_32_bits() {
        // 64:ff9b:1::/48 (RFC 8215), the IPv4 in the last 32 bits.
        assert!(TargetPolicy::Default
            .blocks(ip("64:ff9b:1::a9fe:a9fe"))
            .is_some());
        assert!(TargetPolicy::Default
            .blocks(ip("64:ff9b:1:2345:6789::169.254.169.254"))
            .is_some());
        assert!(TargetPolicy::PublicOnly
            .blocks(ip("64:ff9b:1::7f00:1"))
            .is_some());
        assert!(TargetPolicy::PublicOnly
            .blocks(ip("64:ff9b:1::808:808"))
            .is_none());
    }

    #[test]
    fn teredo_addresses_are_blocked_when_server_or_client_is() {
        // 2001:0:SERVER:flags:port:~CLIENT
        let client = |c: Ipv4Addr| {
            let o = !u32::from(c);
            format!("2001:0:808:808:0:0:{:x}:{:x}", o >> 16, o & 0xffff)
        };
        let metadata = client(Ipv4Addr::new(169, 254, 169, 254));
        assert_eq!(metadata, "2001:0:808:808:0:0:5601:5601");
        assert!(TargetPolicy::Default.blocks(ip(&metadata)).is_some());
        let loopback = client(Ipv4Addr::LOCALHOST);
        assert!(TargetPolicy::PublicOnly.blocks(ip(&loopback)).is_some());
        assert!(TargetPolicy::Default.blocks(ip(&loopback)).is_none());
        // The server half: 169.254.169.254 and 10.0.0.1.
        assert!(TargetPolicy::Default
            .blocks(ip("2001:0:a9fe:a9fe::f7f7:f7f7"))
            .is_some());
        assert!(TargetPolicy::PublicOnly
            .blocks(ip("2001:0:a00:1::f7f7:f7f7"))
            .is_some());
        let public = client(Ipv4Addr::new(8, 8, 4, 4));
        assert!(TargetPolicy::PublicOnly.blocks(ip(&public)).is_none());
        assert!(
            TargetPolicy::PublicOnly.blocks(ip("2001:db8::1")).is_some(),
            "documentation, not Teredo"
        );
    }

    #[test]
    fn decimal_octal_and_hex_ipv4_literals_are_caught() {
        let p = TargetPolicy::PublicOnly;
        for u in [
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
            "http://0251.0376.0251.0376/",
        ] {
            assert!(url_blocked(p, u), "{u}");
        }
        assert!(
            url_blocked(TargetPolicy::Default, "http://2852039166/"),
            "169.254.169.254 in decimal"
        );
        assert!(
            !url_blocked(p, "http://example.com/"),
            "names are judged when resolved"
        );
    }
}
