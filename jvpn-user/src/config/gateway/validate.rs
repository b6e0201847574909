//! Validation of a raw gateway config into [`GatewaySettings`], every refusal at its line.

use super::*;
use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::control::{DEFAULT_TUNNEL_MTU, MAX_TUNNEL_MTU, MIN_TUNNEL_MTU};
use std::collections::HashSet;
use std::ops::Range;

/// The whole file, for problems with no better place (a missing top-level field).
const FILE_START: Range<usize> = 0..0;

pub(super) fn gateway(source: &Source, raw: RawGateway) -> Result<GatewaySettings, ConfigError> {
    let private_key = source
        .private_key("private_key", &raw.private_key, &raw.private_key_file)?
        .ok_or_else(|| {
            source.error(
                FILE_START,
                "no gateway private key: set private_key_file = \"/etc/jvpn/gateway.key\" \
                 (create it with `jvpn keygen`) or private_key = \"<base64>\"",
            )
        })?;
    let psk = source.psk("psk", &raw.psk, &raw.psk_file)?;
    let port = match &raw.port {
        Some(port) if *port.get_ref() == 0 => {
            return Err(source.at(port, "port 0 is not a usable UDP port; omit it for 51900"))
        }
        Some(port) => *port.get_ref(),
        None => DEFAULT_PORT,
    };
    let listen = match &raw.listen {
        Some(listen) => listen.get_ref().parse::<IpAddr>().map_err(|_| {
            source.at(
                listen,
                format!(
                    "listen {:?} is not an IP address; use \"::\" or \"0.0.0.0\"",
                    listen.get_ref()
                ),
            )
        })?,
        None => DEFAULT_LISTEN,
    };
    let iface = raw
        .iface
        .as_ref()
        .map(|iface| source.interface_name("iface", iface))
        .transpose()?;
    let tun = match &raw.tun {
        Some(tun) => source.interface_name("tun", tun)?,
        None => DEFAULT_TUN.to_owned(),
    };
    let state_dir = match &raw.state_dir {
        Some(dir) if !Path::new(dir.get_ref()).is_absolute() => {
            return Err(source.at(
                dir,
                "state_dir must be an absolute path, e.g. \"/var/lib/jvpn\"",
            ))
        }
        Some(dir) => PathBuf::from(dir.get_ref()),
        None => PathBuf::from(DEFAULT_STATE_DIR),
    };
    let mtu = match &raw.mtu {
        Some(mtu) if *mtu.get_ref() < MIN_TUNNEL_MTU => {
            return Err(source.at(mtu, format!("mtu must be at least {MIN_TUNNEL_MTU}")))
        }
        Some(mtu) if *mtu.get_ref() > MAX_TUNNEL_MTU => {
            return Err(source.at(
                mtu,
                format!(
                    "mtu must be at most {MAX_TUNNEL_MTU}: the XDP program drops any datagram \
                     longer than one carrying {MAX_TUNNEL_MTU} bytes as MERGED_RUN"
                ),
            ))
        }
        Some(mtu) => *mtu.get_ref(),
        None => DEFAULT_TUNNEL_MTU,
    };
    let timeouts = timeouts(source, &raw)?;
    let handshake = handshake_limits(source, &raw)?;
    let tunnel = tunnel(source, raw.tunnel.as_ref())?;
    let clients = clients(source, &raw.client, &tunnel, psk.as_ref())?;
    let cluster = cluster::cluster(source, &raw)?;
    let by_key = clients
        .iter()
        .enumerate()
        .map(|(i, client)| (client.public_key, i))
        .collect();
    Ok(GatewaySettings {
        private_key,
        port,
        listen,
        iface,
        state_dir,
        tun,
        mtu,
        timeouts,
        tunnel,
        handshake,
        cluster,
        clients,
        by_key,
    })
}

fn handshake_limits(source: &Source, raw: &RawGateway) -> Result<HandshakeLimits, ConfigError> {
    let defaults = HandshakeLimits::default();
    let at_least_one = |field: &Option<Spanned<usize>>, name: &str, default: usize| match field {
        Some(v) if *v.get_ref() == 0 => Err(source.at(
            v,
            format!("{name} must be at least 1; omit it for the default ({default})"),
        )),
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    };
    Ok(HandshakeLimits {
        max_sessions_per_client: at_least_one(
            &raw.max_sessions_per_client,
            "max_sessions_per_client",
            defaults.max_sessions_per_client,
        )?,
        workers: at_least_one(
            &raw.handshake_workers,
            "handshake_workers",
            defaults.workers,
        )?,
        queue: at_least_one(&raw.handshake_queue, "handshake_queue", defaults.queue)?,
    })
}

/// The shortest reject-after age a config may set, in milliseconds.
const MIN_REJECT_AFTER_MS: u64 = 200;

fn timeouts(source: &Source, raw: &RawGateway) -> Result<Timeouts, ConfigError> {
    let value = |field: &Option<Spanned<u64>>, default: u64| {
        field
            .as_ref()
            .map_or((default, FILE_START), |v| (*v.get_ref(), v.span()))
    };
    let (interval, interval_at) = value(
        &raw.keepalive_interval_secs,
        DEFAULT_KEEPALIVE_INTERVAL_SECS,
    );
    let (timeout, timeout_at) = value(&raw.keepalive_timeout_secs, DEFAULT_KEEPALIVE_TIMEOUT_SECS);
    let (idle, idle_at) = value(&raw.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT_SECS);
    if interval == 0 || interval > u64::from(u16::MAX) {
        return Err(source.error(
            interval_at,
            "keepalive_interval_secs must be between 1 and 65535",
        ));
    }
    if timeout <= interval {
        let at = if raw.keepalive_timeout_secs.is_some() {
            timeout_at
        } else {
            interval_at
        };
        return Err(source.error(
            at,
            format!("keepalive_timeout_secs ({timeout}) must be longer than keepalive_interval_secs ({interval}), or every idle session would be declared lost"),
        ));
    }
    if idle <= timeout {
        let at = if raw.idle_timeout_secs.is_some() {
            idle_at
        } else {
            timeout_at
        };
        return Err(source.error(
            at,
            format!(
                "idle_timeout_secs ({idle}) must be longer than keepalive_timeout_secs ({timeout})"
            ),
        ));
    }
    let (reject_after, reject_at) = value(&raw.reject_after_ms, DEFAULT_REJECT_AFTER_MS);
    if reject_after < MIN_REJECT_AFTER_MS {
        return Err(source.error(
            reject_at,
            format!("reject_after_ms ({reject_after}) must be at least {MIN_REJECT_AFTER_MS}: a client needs a round trip and a commit to rekey"),
        ));
    }
    let (reject_messages, messages_at) =
        value(&raw.reject_after_messages, DEFAULT_REJECT_AFTER_MESSAGES);
    if reject_messages == 0 {
        return Err(source.error(messages_at, "reject_after_messages must be at least 1"));
    }
    Ok(Timeouts {
        keepalive_interval: Duration::from_secs(interval),
        keepalive_timeout: Duration::from_secs(timeout),
        idle_timeout: Duration::from_secs(idle),
        reject_after: Duration::from_millis(reject_after),
        reject_after_messages: reject_messages,
    })
}

fn tunnel(
    source: &Source,
    raw: Option<&Spanned<RawTunnel>>,
) -> Result<TunnelNetworks, ConfigError> {
    let missing = "set the gateway's tunnel addresses: [tunnel] with ipv4 = \"10.77.0.1/24\" and/or ipv6 = \"fd77::1/64\"";
    let Some(table) = raw else {
        return Err(source.error(FILE_START, format!("no [tunnel] table; {missing}")));
    };
    let ipv4 = match &table.get_ref().ipv4 {
        Some(text) => {
            let net: Ipv4Net = text.get_ref().parse().map_err(|_| {
                source.at(text, "[tunnel] ipv4 must be the gateway's address with a prefix, e.g. \"10.77.0.1/24\"")
            })?;
            let host = net.addr();
            if net.prefix_len() > 30 || host == net.network() || host == net.broadcast() {
                return Err(source.at(text, format!("[tunnel] ipv4 {net} leaves no room for clients or is not a host address; use e.g. \"10.77.0.1/24\"")));
            }
            Some(net)
        }
        None => None,
    };
    let ipv6 = match &table.get_ref().ipv6 {
        Some(text) => {
            let net: Ipv6Net = text.get_ref().parse().map_err(|_| {
                source.at(text, "[tunnel] ipv6 must be the gateway's address with a prefix, e.g. \"fd77::1/64\"")
            })?;
            if net.prefix_len() > 126 || net.addr() == net.network() {
                return Err(source.at(text, format!("[tunnel] ipv6 {net} leaves no room for clients or is not a host address; use e.g. \"fd77::1/64\"")));
            }
            Some(net)
        }
        None => None,
    };
    if ipv4.is_none() && ipv6.is_none() {
        return Err(source.at(table, format!("[tunnel] is empty; {missing}")));
    }
    Ok(TunnelNetworks { ipv4, ipv6 })
}

/// A network a client owns, with where the file gave it.
struct Claim {
    net: IpNet,
    at: Range<usize>,
    client: usize,
}

fn clients(
    source: &Source,
    raw: &[Spanned<RawClient>],
    tunnel: &TunnelNetworks,
    default_psk: Option<&PresharedKey>,
) -> Result<Vec<ClientEntry>, ConfigError> {
    let mut clients: Vec<ClientEntry> = Vec::with_capacity(raw.len());
    let mut keys: HashMap<PublicKey, usize> = HashMap::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut claims: Vec<Claim> = Vec::new();
    for (index, table) in raw.iter().enumerate() {
        let line = source.line_of(table.span().start);
        let entry = table.get_ref();
        let public_key = PublicKey::from_base64(entry.public_key.get_ref())
            .map_err(|e| source.at(&entry.public_key, format!("public_key {e}")))?;
        if let Some(first) = keys.insert(public_key, line) {
            return Err(source.at(
                &entry.public_key,
                format!("public_key is already used by the [[client]] at line {first}; each client needs its own key (run `jvpn keygen` on the client)"),
            ));
        }
        let name = match &entry.name {
            Some(name) if name.get_ref().trim().is_empty() => {
                return Err(source.at(name, "name must not be empty; omit it for client-N"))
            }
            Some(name) => name.get_ref().clone(),
            None => format!("client-{}", index + 1),
        };
        if !names.insert(name.clone()) {
            let at = entry.name.as_ref().map_or(table.span(), |n| n.span());
            return Err(source.error(at, format!("a client named {name:?} is already configured; give each [[client]] its own name")));
        }
        let psk = match source.psk("psk", &entry.psk, &entry.psk_file)? {
            Some(own) => own,
            None => default_psk.cloned().unwrap_or_else(PresharedKey::none),
        };
        let ipv4 = tunnel_address(source, &entry.ipv4, tunnel.ipv4.map(IpNet::V4), "ipv4")?.map(
            |a| match a {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!("parsed within an IPv4 network"),
            },
        );
        let ipv6 = tunnel_address(source, &entry.ipv6, tunnel.ipv6.map(IpNet::V6), "ipv6")?.map(
            |a| match a {
                IpAddr::V6(a) => a,
                IpAddr::V4(_) => unreachable!("parsed within an IPv6 network"),
            },
        );
        if ipv4.is_none() && ipv6.is_none() {
            return Err(source.at(table, format!("client {name:?} has no tunnel address: set ipv4 and/or ipv6 inside the [tunnel] networks")));
        }
        let mut allowed_ips = Vec::new();
        let mut own_claims = Vec::new();
        for (addr, at) in [
            (ipv4.map(IpAddr::V4), entry.ipv4.as_ref().map(|v| v.span())),
            (ipv6.map(IpAddr::V6), entry.ipv6.as_ref().map(|v| v.span())),
        ] {
            if let (Some(addr), Some(at)) = (addr, at) {
                own_claims.push((IpNet::from(addr), at));
            }
        }
        for text in &entry.allowed_ips {
            let net: IpNet = text.get_ref().parse().map_err(|_| {
                source.at(
                    text,
                    format!(
                        "allowed_ips entry {:?} is not a network; use e.g. \"192.168.50.0/24\"",
                        text.get_ref()
                    ),
                )
            })?;
            let gateway_address = match net {
                IpNet::V4(_) => tunnel.ipv4.map(|n| IpAddr::V4(n.addr())),
                IpNet::V6(_) => tunnel.ipv6.map(|n| IpAddr::V6(n.addr())),
            };
            if gateway_address.is_some_and(|g| net.contains(&g)) {
                return Err(source.at(text, format!("allowed_ips entry {net} contains the gateway's own tunnel address; give the client only its own networks")));
            }
            own_claims.push((net.trunc(), text.span()));
        }
        for (net, at) in own_claims {
            if let Some(other) = claims.iter().find(|c| overlaps(&c.net, &net)) {
                let owner = &clients[other.client];
                return Err(source.error(
                    at,
                    format!(
                        "{net} overlaps {} of client {:?} (line {}); every tunnel address must belong to exactly one client",
                        other.net,
                        owner.name,
                        source.line_of(other.at.start)
                    ),
                ));
            }
            allowed_ips.push(net);
            claims.push(Claim {
                net,
                at,
                client: index,
            });
        }
        clients.push(ClientEntry {
            name,
            public_key,
            psk,
            ipv4,
            ipv6,
            allowed_ips,
        });
    }
    Ok(clients)
}

/// A client's tunnel address: inside the tunnel network, and neither the gateway's address nor
/// the network's own (or, for IPv4, broadcast) address.
fn tunnel_address(
    source: &Source,
    text: &Option<Spanned<String>>,
    network: Option<IpNet>,
    field: &str,
) -> Result<Option<IpAddr>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    let Some(network) = network else {
        return Err(source.at(text, format!("{field} is set but [tunnel] has no {field} network; add one or remove this address")));
    };
    let addr: IpAddr = text
        .get_ref()
        .parse()
        .ok()
        .filter(|a: &IpAddr| a.is_ipv4() == network.addr().is_ipv4())
        .ok_or_else(|| {
            source.at(
                text,
                format!(
                    "{field} {:?} is not an {} address",
                    text.get_ref(),
                    if network.addr().is_ipv4() {
                        "IPv4"
                    } else {
                        "IPv6"
                    }
                ),
            )
        })?;
    let reserved = addr == network.addr()
        || addr == network.network()
        || (matches!(network, IpNet::V4(_)) && addr == network.broadcast());
    if !network.contains(&addr) || reserved {
        return Err(source.at(
            text,
            format!("{field} {addr} must be a free host address inside the tunnel network {network} (not the gateway's {})", network.addr()),
        ));
    }
    Ok(Some(addr))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
