"""How a user agent names itself on a flow (Via, Contact, its listening address), and where a
URI points.

There is no DNS here (RFC 3263 is not used on loopback test beds): a URI points at the host and
port written in it. A socket bound to a wildcard address is named by the user agent's
`contact_host` instead, since a peer cannot send to 0.0.0.0.
"""

from __future__ import annotations

from confsec.codec.sip import parse_uri
from confsec.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from confsec.net.flow import Destination, Flow
from confsec.net.headers import contact_uri, new_branch
from confsec.net.transport import TransportLayer

_DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


def destination_for(uri: str) -> Destination:
    """Where a URI (or a Contact/Route value) points: host and port as written, transport from
    `transport=` or the scheme (sips -> TLS)."""
    try:
        parsed = parse_uri(contact_uri(uri))
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"cannot route to {uri!r}: {exc}") from exc
    name = parsed.transport or ("tls" if parsed.scheme == "sips" else "udp")
    if parsed.scheme == "sips":
        name = "tls"
    if name not in _DEFAULT_PORTS:
        raise LocalProtocolError(f"unsupported transport {name!r} in {uri!r}")
    return (name, parsed.host, parsed.port or _DEFAULT_PORTS[name])


class LocalAddresses:
    """Our own addresses, as the peer must see them: `user` is the user part of our AOR."""

    def __init__(self, transport: TransportLayer, contact_host: str, user: str | None) -> None:
        self.transport = transport
        self.contact_host = contact_host
        self.user = user

    def public_host(self, host: str) -> str:
        return self.contact_host if host in ("0.0.0.0", "::", "") else host

    def listening(self, transport: str) -> Destination:
        """Our listening destination for `transport`, as a peer would dial it."""
        addr = self.transport.listen_address(transport)
        if addr is None:
            raise ConfigError(f"user agent does not listen on {transport}")
        return (transport, self.public_host(addr[0]), addr[1])

    def via_for(self, flow: Flow, branch: str | None = None) -> str:
        """Our Via for a request on `flow` (rport asked for, RFC 3581)."""
        if flow.transport == "udp":
            host, port = self.public_host(flow.local[0]), flow.local[1]
        else:
            listen = self.transport.listen_address(flow.transport)
            host, port = self.public_host((listen or flow.local)[0]), (listen or flow.local)[1]
        host_text = f"[{host}]" if ":" in host else host
        return (
            f"SIP/2.0/{flow.transport.upper()} {host_text}:{port}"
            f";branch={branch or new_branch()};rport"
        )

    def contact_for(self, flow: Flow) -> str:
        """Our Contact for messages on `flow`: the listening address of that transport if we
        have one, else the flow's own local address (the peer reaches us over the flow)."""
        listen = self.transport.listen_address(flow.transport)
        host, port = listen if listen is not None else flow.local
        host = self.public_host(host)
        if host == flow.local[0] and host in ("0.0.0.0", "::"):
            host = self.contact_host
        host_text = f"[{host}]" if ":" in host else host
        user = f"{self.user}@" if self.user else ""
        if flow.transport == "tls":
            return f"<sips:{user}{host_text}:{port}>"
        if flow.transport == "tcp":
            return f"<sip:{user}{host_text}:{port};transport=tcp>"
        return f"<sip:{user}{host_text}:{port}>"
