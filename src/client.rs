//! Who is asking, as far as the network says: the client's address behind trusted proxies, and
//! the network that limits count it by. Shared by the routes, authentication and the connection
//! limits, so it lives below all of them.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::Settings;

/// The client's address: the socket peer, or — when that peer is a trusted proxy — the last
/// X-Forwarded-For hop that is not itself a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

/// The client's network, as limits count it: an IPv4 address (IPv4-mapped IPv6 included) as
/// itself, an IPv6 address as its network of `ENLACE_IPV6_PREFIX` bits (a /64 by default), since
/// one host is usually given a whole /64 and can take any address in it.
pub fn client_network(req: &HttpRequest, settings: &Settings) -> Option<IpAddr> {
    network_of_client(req, &settings.trusted_proxies, settings.ipv6_prefix)
}

/// `client_network` with the two settings it reads given apart.
pub fn network_of_client(req: &HttpRequest, trusted: &[IpAddr], ipv6_prefix: u8) -> Option<IpAddr> {
    Some(network_of(client_ip(req, trusted)?, ipv6_prefix))
}

fn network_of(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                    .unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::network_of;
    use std::net::IpAddr;

    #[test]
    fn ipv6_clients_are_counted_per_network() {
        let net =
            |raw: &str, prefix| network_of(raw.parse::<IpAddr>().unwrap(), prefix).to_string();
        assert_eq!(net("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(
            net("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            "2001:db8:1:2::"
        );
        assert_eq!(net("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::");
        assert_eq!(net("2001:db8:1:2:3:4:5:6", 128), "2001:db8:1:2:3:4:5:6");
        assert_eq!(net("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(net("192.0.2.7", 64), "192.0.2.7");
    }
}
