//! Sockets of `web_server` guests (a `wasi:cli` command that listens through
//! wasi:sockets): each instance may bind and listen on its one loopback port and accept
//! loopback peers; it connects nowhere, resolves no names and has no UDP. Every other
//! guest gets no socket at all.

use std::net::SocketAddr;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::TcpSocket;
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsView};

use crate::capabilities::CapabilityViews;

/// Store data that knows its instance's port mapping (a web server's inner and outer
/// port; none for every other guest).
pub trait PortMapView {
    /// The mapping `(inner, outer)`, if any.
    fn port_map(&self) -> Option<(u16, u16)>;
}

/// Replaces `wasi:sockets/tcp`'s `start-bind` with one that applies the instance's port
/// mapping, then defers to wasmtime-wasi.
pub(super) fn add_bind_rewrite<T: CapabilityViews>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut tcp = linker.instance("wasi:sockets/tcp@0.2.12")?;
    tcp.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store: StoreContextMut<'_, T>,
         (this, network, address): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let address = rewrite(address, store.data().port_map());
                let state = store.data_mut();
                let mut view = WasiSocketsView::sockets(state);
                let outcome = HostTcpSocket::start_bind(&mut view, this, network, address).await;
                Ok((match outcome {
                    Ok(()) => Ok(()),
                    Err(e) => Err(network::Host::convert_error_code(&mut view, e)?),
                },))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Sets an instance's socket policy: none, or for a web server mapped
/// `(inner, outer)`, its one loopback port.
pub fn confine(builder: &mut WasiCtxBuilder, port_map: Option<(u16, u16)>) {
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some((_, outer)) = port_map {
        builder
            .allow_tcp(true)
            .socket_addr_check(move |addr, usage| {
                let ok = allowed(addr, usage, outer);
                if !ok {
                    tracing::warn!(%addr, ?usage, "refused a socket use by a web server guest");
                }
                Box::pin(async move { ok })
            });
    }
}

/// The socket policy of a web server instance mapped `inner` → `outer`: bind and listen
/// on the outer loopback port, accept loopback peers; nothing else.
fn allowed(addr: SocketAddr, usage: SocketAddrUse, outer: u16) -> bool {
    match usage {
        SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => {
            addr.ip().is_loopback() && addr.port() == outer
        }
        SocketAddrUse::TcpAccept => addr.ip().is_loopback(),
        _ => false,
    }
}

/// Rewrites a bind to the guest's inner port into a bind to its loopback outer port.
pub fn rewrite(address: IpSocketAddress, map: Option<(u16, u16)>) -> IpSocketAddress {
    let Some((inner, outer)) = map else {
        return address;
    };
    match address {
        IpSocketAddress::Ipv4(a) if a.port == inner => IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: outer,
            address: (127, 0, 0, 1),
        }),
        IpSocketAddress::Ipv6(a) if a.port == inner => IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port: outer,
            address: (0, 0, 0, 0, 0, 0, 0, 1),
            flow_info: a.flow_info,
            scope_id: a.scope_id,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mapped_port_is_rewritten() {
        let any = IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: 8000,
            address: (0, 0, 0, 0),
        });
        match rewrite(any, Some((8000, 41000))) {
            IpSocketAddress::Ipv4(a) => assert_eq!((a.port, a.address), (41000, (127, 0, 0, 1))),
            IpSocketAddress::Ipv6(_) => panic!("family changed"),
        }
        let other = IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: 9000,
            address: (0, 0, 0, 0),
        });
        assert!(
            matches!(rewrite(other, Some((8000, 41000))), IpSocketAddress::Ipv4(a) if a.port == 9000)
        );
    }

    #[test]
    fn a_web_server_binds_its_port_and_connects_nowhere() {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert!(allowed(local(41000), SocketAddrUse::TcpBind, 41000));
        assert!(!allowed(local(9000), SocketAddrUse::TcpBind, 41000));
        assert!(!allowed(
            SocketAddr::from(([0, 0, 0, 0], 41000)),
            SocketAddrUse::TcpBind,
            41000
        ));
        assert!(!allowed(local(80), SocketAddrUse::TcpConnect, 41000));
        assert!(allowed(local(5555), SocketAddrUse::TcpAccept, 41000));
    }
}
