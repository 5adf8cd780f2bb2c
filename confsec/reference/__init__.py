"""The embedded reference deployment: a secure conference service on loopback."""
