//! Address rules: client allow-lists and denied destinations (CIDRs or host globs), checked
//! against the address a connection really uses.

use std::net::IpAddr;

/// A network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// A network or port rule of `[proxy]` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not an IP address or network.
    #[error("{0:?} is not an IP network")]
    Network(String),
    /// A prefix length out of range for the address family.
    #[error("{value:?}: prefix must be 0..={max}")]
    Prefix {
        /// The rule as written.
        value: String,
        /// The family's longest prefix.
        max: u8,
    },
    /// Not a port nor a `"from-to"` range.
    #[error("{0:?} is not a port or a \"from-to\" range")]
    Ports(String),
    /// A `"from-to"` range whose ends are not ports in order.
    #[error("{0:?} is not a \"from-to\" port range")]
    PortRange(String),
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (a host route).
    pub fn parse(s: &str) -> Result<Cidr, RuleError> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| RuleError::Network(s.to_string()))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| RuleError::Prefix { value: s.to_string(), max })?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }

    /// Does the network contain `ip` (IPv4-mapped IPv6 addresses count as IPv4)?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            // An IPv6 network written for IPv4 addresses (`::ffff:0:0/96`, `::/0`) holds them in
            // their mapped form.
            (IpAddr::V6(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a.to_ipv6_mapped()) & mask
            }
            _ => false,
        }
    }
}

/// Networks refused by default, as the most trusted forward proxies ship (Squid's `deny
/// to_localhost`): loopback, link-local (cloud metadata at 169.254.169.254), "this network" and
/// the unspecified addresses (Linux connects 0.0.0.0 to this host).
pub const BUILT_IN_DENIED: [&str; 6] = ["127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128"];

/// The address an IPv6 address stands for when it carries an IPv4 one: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`, not `::` or `::1`) or NAT64 (`64:ff9b::a.b.c.d`).
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let tail = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && u32::from(tail) > 1 {
        return IpAddr::V4(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(tail);
    }
    ip
}

/// Where clients may connect through the proxy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Destinations {
    deny_nets: Vec<Cidr>,
    deny_hosts: Vec<String>,
    allow_nets: Vec<Cidr>,
    allow_hosts: Vec<String>,
    built_in: Vec<Cidr>,
    /// labelgate's own listeners (never reachable through it).
    pub(crate) own: Vec<std::net::SocketAddr>,
    connect_ports: Vec<(u16, u16)>,
}

/// Why a destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Named in `deny_destinations`.
    Denied,
    /// Loopback, link-local or unspecified, not opened by `allow_destinations`.
    BuiltIn,
    /// labelgate's own listener.
    Own,
}

impl Refusal {
    pub(crate) fn explain(self) -> &'static str {
        match self {
            Refusal::Denied => "it is in deny_destinations",
            Refusal::BuiltIn => "it is on this host's loopback, link-local or unspecified addresses (refused by default; allow_destinations opens exceptions)",
            Refusal::Own => "it is one of labelgate's own listeners",
        }
    }
}

impl Destinations {
    /// The rules of `[proxy]` (CIDRs or host globs in each list).
    pub(crate) fn new(deny: &[String], allow: &[String], connect_ports: &[crate::PortSpec]) -> Result<Destinations, RuleError> {
        let split = |list: &[String]| -> Result<(Vec<Cidr>, Vec<String>), RuleError> {
            let (mut nets, mut hosts) = (Vec::new(), Vec::new());
            for d in list {
                match Cidr::parse(d) {
                    Ok(c) => nets.push(c),
                    Err(_) if !d.contains('/') => hosts.push(d.trim().to_ascii_lowercase()),
                    Err(e) => return Err(e),
                }
            }
            Ok((nets, hosts))
        };
        let (deny_nets, deny_hosts) = split(deny)?;
        let (allow_nets, allow_hosts) = split(allow)?;
        let built_in = BUILT_IN_DENIED.iter().filter_map(|c| Cidr::parse(c).ok()).collect();
        let connect_ports = connect_ports.iter().map(crate::PortSpec::bounds).collect::<Result<Vec<_>, _>>()?;
        Ok(Destinations { deny_nets, deny_hosts, allow_nets, allow_hosts, built_in, own: Vec::new(), connect_ports })
    }

    /// Whether `CONNECT` may open `port`.
    pub(crate) fn connect_port(&self, port: u16) -> bool {
        self.connect_ports.iter().any(|(a, b)| (*a..=*b).contains(&port))
    }

    /// The rules on the name alone (before resolving).
    pub(crate) fn check_name(&self, host: &str) -> Result<(), Refusal> {
        if self.deny_hosts.iter().any(|g| host_matches(g, host)) {
            return Err(Refusal::Denied);
        }
        Ok(())
    }

    /// The rules on an address `host` resolved to: the one that will be connected.
    pub(crate) fn check_address(&self, host: &str, addr: std::net::SocketAddr) -> Result<(), Refusal> {
        let ip = canonical(addr.ip());
        // A network matches the address as written or as the IPv4 address it stands for.
        let denied = |n: &Cidr| n.contains(ip) || n.contains(addr.ip());
        if self.deny_nets.iter().any(denied) {
            return Err(Refusal::Denied);
        }
        // This host, however spelled: loopback, unspecified, "this network".
        let this_host = ip.is_loopback() || ip.is_unspecified() || matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 0);
        if self.own.iter().any(|o| o.port() == addr.port() && (canonical(o.ip()) == ip || this_host)) {
            return Err(Refusal::Own);
        }
        if self.built_in.iter().any(|n| n.contains(ip)) {
            let opened = self.allow_nets.iter().any(|n| n.contains(ip)) || self.allow_hosts.iter().any(|g| host_matches(g, host));
            if !opened {
                return Err(Refusal::BuiltIn);
            }
        }
        Ok(())
    }

    /// After connecting: a connection whose two ends are one address of this host, on a
    /// listener's port, is labelgate talking to itself (reached through a name or an address
    /// of this host that no rule lists).
    pub(crate) fn check_connected(&self, host: &str, local: std::net::SocketAddr, peer: std::net::SocketAddr) -> Result<(), Refusal> {
        let ip = canonical(peer.ip());
        if canonical(local.ip()) != ip {
            return Ok(());
        }
        // Both ends on one address: the destination is this host, through one of its own
        // addresses (a service listening on 0.0.0.0 or ::).
        if self.own.iter().any(|o| o.port() == peer.port()) {
            return Err(Refusal::Own);
        }
        let opened = self.allow_nets.iter().any(|n| n.contains(ip) || n.contains(peer.ip()))
            || self.allow_hosts.iter().any(|g| host_matches(g, host));
        if !opened {
            return Err(Refusal::BuiltIn);
        }
        Ok(())
    }
}

/// A host glob: `example.com` or `*.example.com` (any subdomain).
pub(crate) fn host_matches(glob: &str, host: &str) -> bool {
    let glob = glob.trim().to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match glob.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix) && host.as_bytes()[host.len() - suffix.len() - 1] == b'.',
        None => host == glob,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1/128").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn this_host_however_spelled_is_refused_unless_opened() {
        let d = Destinations::new(&[], &[], &[crate::PortSpec::One(443)]).unwrap();
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        for addr in [
            "127.0.0.1:80",
            "127.9.9.9:80",
            "[::1]:80",
            "0.0.0.0:80",
            "0.1.2.3:80",
            "[::]:80",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::127.0.0.1]:80",
            "[64:ff9b::a9fe:a9fe]:80",
        ] {
            assert_eq!(d.check_address("h", at(addr)), Err(Refusal::BuiltIn), "{addr}");
        }
        assert_eq!(d.check_address("h", at("93.184.216.34:443")), Ok(()));
        assert_eq!(canonical("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
        let open = Destinations::new(
            &["127.0.0.2".into()],
            &["127.0.0.0/8".into(), "localhost".into()],
            &[crate::PortSpec::Range("1000-2000".into())],
        )
        .unwrap();
        assert_eq!(open.check_address("h", at("127.0.0.1:80")), Ok(()));
        assert_eq!(open.check_address("h", at("127.0.0.2:80")), Err(Refusal::Denied), "deny wins over allow");
        assert_eq!(open.check_address("localhost", at("[::1]:80")), Ok(()), "opened by name");
        assert!(open.connect_port(1500) && !open.connect_port(443));
        let mut own = open.clone();
        own.own = vec![at("127.0.0.1:3128"), at("0.0.0.0:9180")];
        assert_eq!(own.check_address("h", at("127.0.0.1:3128")), Err(Refusal::Own));
        assert_eq!(own.check_address("h", at("127.0.0.5:9180")), Err(Refusal::Own), "a wildcard listener on loopback");
        assert_eq!(own.check_address("h", at("10.1.1.1:9180")), Ok(()), "another host's port 9180");
        assert_eq!(own.check_connected("h", at("10.0.0.5:40000"), at("10.0.0.5:9180")), Err(Refusal::Own), "this host's own address");
        assert_eq!(own.check_connected("h", at("10.0.0.5:40000"), at("10.0.0.5:8080")), Err(Refusal::BuiltIn), "a service of this host");
        assert_eq!(own.check_connected("h", at("10.0.0.5:40000"), at("10.0.0.6:9180")), Ok(()));
        let v6_deny = Destinations::new(&["::ffff:127.0.0.2".into(), "64:ff9b::/96".into()], &["127.0.0.0/8".into()], &[]).unwrap();
        assert_eq!(v6_deny.check_address("h", at("127.0.0.2:80")), Err(Refusal::Denied), "a deny in IPv6 form");
        assert_eq!(v6_deny.check_address("h", at("[64:ff9b::7f00:3]:80")), Err(Refusal::Denied));
    }

    #[test]
    fn globs() {
        assert!(host_matches("*.bank.example", "www.bank.example"));
        assert!(!host_matches("*.bank.example", "bank.example"));
        assert!(!host_matches("*.bank.example", "evilbank.example"));
        assert!(host_matches("health.example", "HEALTH.example."));
    }
}
