//! The WASI network allow-list: what each grant lets through, and that
//! nothing else is.

use std::net::{IpAddr, SocketAddr};
use wasmbeam_runtime::driver::wasi_io::{network_allows, NetGrant, NetUse};
use wasmtime_wasi::sockets::SocketAddrUse as U;

fn grant(net_use: NetUse, ip: &str, prefix: u8, ports: (u16, u16)) -> NetGrant {
    NetGrant {
        net_use,
        ip: ip.parse::<IpAddr>().unwrap(),
        prefix,
        ports,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn no_grant_allows_nothing() {
    for what in [
        U::TcpConnect,
        U::TcpBind,
        U::TcpListen,
        U::TcpAccept,
        U::UdpBind,
        U::UdpSend,
    ] {
        assert!(!network_allows(&[], addr("127.0.0.1:80"), what));
        assert!(!network_allows(&[], addr("0.0.0.0:0"), what));
    }
}

#[test]
fn a_connect_grant_allows_its_host_and_ports_only() {
    let grants = [grant(NetUse::Connect, "127.0.0.1", 32, (8000, 8080))];
    assert!(network_allows(
        &grants,
        addr("127.0.0.1:8000"),
        U::TcpConnect
    ));
    assert!(network_allows(
        &grants,
        addr("127.0.0.1:8080"),
        U::TcpConnect
    ));
    assert!(!network_allows(
        &grants,
        addr("127.0.0.1:8081"),
        U::TcpConnect
    ));
    assert!(!network_allows(
        &grants,
        addr("127.0.0.2:8000"),
        U::TcpConnect
    ));
    // The same host written as IPv4-mapped IPv6 is the same host.
    assert!(network_allows(
        &grants,
        addr("[::ffff:127.0.0.1]:8000"),
        U::TcpConnect
    ));
    assert!(!network_allows(&grants, addr("[::1]:8000"), U::TcpConnect));
    // The bind the system makes before connecting; no listening, no UDP.
    assert!(network_allows(&grants, addr("0.0.0.0:0"), U::TcpBind));
    assert!(!network_allows(&grants, addr("127.0.0.1:8000"), U::TcpBind));
    assert!(!network_allows(
        &grants,
        addr("127.0.0.1:8000"),
        U::TcpListen
    ));
    assert!(!network_allows(&grants, addr("127.0.0.1:8000"), U::UdpSend));
}

#[test]
fn prefixes_match_networks() {
    let grants = [
        grant(NetUse::Connect, "10.1.0.0", 16, (443, 443)),
        grant(NetUse::Connect, "fd00::", 8, (0, 65535)),
    ];
    assert!(network_allows(
        &grants,
        addr("10.1.200.3:443"),
        U::TcpConnect
    ));
    assert!(!network_allows(
        &grants,
        addr("10.2.0.1:443"),
        U::TcpConnect
    ));
    assert!(network_allows(&grants, addr("[fd12::1]:9"), U::TcpConnect));
    assert!(!network_allows(&grants, addr("[fe80::1]:9"), U::TcpConnect));
    let everything = [grant(NetUse::Connect, "0.0.0.0", 0, (1, 65535))];
    assert!(network_allows(
        &everything,
        addr("8.8.8.8:53"),
        U::TcpConnect
    ));
    assert!(!network_allows(
        &everything,
        addr("[2001:db8::1]:53"),
        U::TcpConnect
    ));
}

#[test]
fn listen_and_udp_grants() {
    let grants = [
        grant(NetUse::Listen, "127.0.0.1", 32, (9000, 9000)),
        grant(NetUse::Udp, "127.0.0.1", 32, (53, 53)),
    ];
    assert!(network_allows(&grants, addr("127.0.0.1:9000"), U::TcpBind));
    assert!(network_allows(
        &grants,
        addr("127.0.0.1:9000"),
        U::TcpListen
    ));
    assert!(network_allows(
        &grants,
        addr("192.0.2.1:5555"),
        U::TcpAccept
    ));
    assert!(!network_allows(&grants, addr("127.0.0.1:9001"), U::TcpBind));
    assert!(!network_allows(
        &grants,
        addr("127.0.0.1:9000"),
        U::TcpConnect
    ));
    assert!(network_allows(&grants, addr("127.0.0.1:53"), U::UdpSend));
    assert!(network_allows(&grants, addr("127.0.0.1:53"), U::UdpReceive));
    assert!(network_allows(&grants, addr("0.0.0.0:0"), U::UdpBind));
    assert!(!network_allows(&grants, addr("127.0.0.1:54"), U::UdpSend));
}
