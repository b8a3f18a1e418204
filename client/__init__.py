"""The mTLS client: verifies the server, presents its certificate, shows the handshake."""
