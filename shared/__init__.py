"""Code the server and the client share, in three layers that import only downwards.

``core``
    errors, configuration, the sans-I/O line protocol, CLI plumbing.
``pki``
    certificate tooling: keys, the CA, revocation, inspection, the bad set, and
    the ``mtls-certs`` command (imports ``core``).
``tls``
    the connection: contexts, the socket-backed stream, the handshake trace and
    its renderers, diagnosis, peer identity (imports ``core`` and ``pki``).
``testing``
    the pytest plugin (imports all of the above; starts the server as a process).
"""
