//! Address lists in the configuration: trusted proxies (IP ranges) and the hosts webhooks and
//! pollers may reach (host, optionally with a port).

use std::net::IpAddr;

/// An IP address range in CIDR notation (`127.0.0.0/8`, `::1`, `10.1.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text}: not an IP address or range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text}: prefix length must be 0..={max}")),
            },
        };
        Ok(IpRange { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may show up as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_match(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_match(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// The key under which per-address limits count a client: an IPv4 address, or an IPv6
/// address's /64. One subscriber's network usually has a whole /64 (and a host can pick any
/// address in it), so single IPv6 addresses are no bound.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(o.into())
        }
        v4 => v4,
    }
}

fn prefix_match(net: &[u8], addr: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    if net[..full] != addr[..full] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rest);
    net[full] & mask == addr[full] & mask
}

/// Parses a comma-separated list of IP ranges.
pub fn parse_ranges(text: &str) -> Result<Vec<IpRange>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(IpRange::parse)
        .collect()
}

/// A host that webhooks and pollers may call: `example.org` (any port) or `example.org:8000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// Lower case; IPv6 addresses without brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl HostRule {
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let text = text.trim();
        let bad = || format!("{text}: expected HOST or HOST:PORT");
        // `[::1]:8000`, `[::1]`, `host:8000`, `host`, or a bare IPv6 address.
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else if text.matches(':').count() == 1 {
            let (h, p) = text.split_once(':').expect("one colon");
            (h, Some(p))
        } else {
            (text, None)
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad());
        }
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
        };
        Ok(HostRule {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The rule for exactly the host and port of `url` (its scheme's default port if none).
    pub fn of_url(url: &url::Url) -> Option<HostRule> {
        Some(HostRule {
            host: host_text(url)?,
            port: url.port_or_known_default(),
        })
    }

    pub fn allows(&self, url: &url::Url) -> bool {
        host_text(url).is_some_and(|h| h == self.host)
            && self
                .port
                .is_none_or(|p| Some(p) == url.port_or_known_default())
    }
}

/// A URL's host as rules spell it: lower case, IPv6 without brackets.
fn host_text(url: &url::Url) -> Option<String> {
    Some(match url.host()? {
        url::Host::Ipv6(a) => a.to_string(),
        other => other.to_string().to_ascii_lowercase(),
    })
}

/// Parses a comma-separated list of host rules.
pub fn parse_hosts(text: &str) -> Result<Vec<HostRule>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(HostRule::parse)
        .collect()
}

/// Parses `--allowed-origins`: comma-separated `scheme://host[:port]` (http or https), kept
/// lower-cased, as browsers write the `Origin` header. `*` (or nothing) allows any origin: `None`.
pub fn parse_origins(text: &str) -> Result<Option<Vec<String>>, String> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() || items == ["*"] {
        return Ok(None);
    }
    items
        .into_iter()
        .map(|item| {
            let origin = item.trim_end_matches('/').to_ascii_lowercase();
            let url = url::Url::parse(&origin).map_err(|e| format!("{item}: {e}"))?;
            let plain = matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty();
            if !plain || url.origin().ascii_serialization() != origin {
                return Err(format!(
                    "{item} (expected scheme://host[:port], e.g. https://example.com)"
                ));
            }
            Ok(origin)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_are_grouped_by_slash_64() {
        let k = |s: &str| address_group(s.parse().unwrap()).to_string();
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(k("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(k("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn origins() {
        assert_eq!(parse_origins("").unwrap(), None);
        assert_eq!(parse_origins("*").unwrap(), None);
        assert_eq!(
            parse_origins("https://App.example.com, http://localhost:8000/").unwrap(),
            Some(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:8000".to_owned()
            ])
        );
        // The default port is not part of an Origin header.
        assert!(parse_origins("https://example.com:443").is_err());
        assert!(parse_origins("example.com").is_err());
        assert!(parse_origins("https://example.com/path").is_err());
        assert!(parse_origins("ftp://example.com").is_err());
    }

    #[test]
    fn ranges() {
        let r = parse_ranges("127.0.0.0/8, ::1,10.0.0.5").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(r[0].contains(ip("127.9.9.9")));
        assert!(!r[0].contains(ip("128.0.0.1")));
        assert!(r[0].contains(ip("::ffff:127.0.0.1")));
        assert!(r[1].contains(ip("::1")));
        assert!(r[2].contains(ip("10.0.0.5")) && !r[2].contains(ip("10.0.0.6")));
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("nope").is_err());
        assert!(IpRange::parse("192.168.0.0/20")
            .unwrap()
            .contains(ip("192.168.15.255")));
    }

    #[test]
    fn hosts() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let any = HostRule::parse("App.Example").unwrap();
        assert!(
            any.allows(&u("https://app.example/x")) && any.allows(&u("http://app.example:81/"))
        );
        let one = HostRule::parse("127.0.0.1:8000").unwrap();
        assert!(one.allows(&u("http://127.0.0.1:8000/hookbox/connect")));
        assert!(!one.allows(&u("http://127.0.0.1:8001/internal")));
        let v6 = HostRule::parse("[::1]:80").unwrap();
        assert!(v6.allows(&u("http://[::1]/")));
        assert_eq!(HostRule::parse("::1").unwrap().host, "::1");
        assert!(HostRule::parse("a/b").is_err() && HostRule::parse("h:x").is_err());
    }
}
