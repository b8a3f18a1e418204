"""What the tests share, apart from the bench (tests/bench/ imports from here, never the reverse).

- ``pki``: the test PKI, built in code and written to files;
- ``tls``: our server and client configured from it, run in process;
- ``peers``: finding the programs nobody here wrote (never installing them);
- ``ports``, ``processes``: free loopback ports, waiting for one, reading and stopping child processes;
- ``s_server``, ``nginx``, ``haproxy``, ``server_process``: each peer (and our own server) as a process;
- ``peer_flags``: the flags that make openssl s_client and curl present the test PKI;
- ``openssl_trace``: which certificates `openssl s_client -trace` shows a side sent;
- ``python_clients``: requests and httpx as a command, for ``mtls-server badservers --run``;
- ``forward``, ``backends``: forward mode's server, raw clients and the services behind it;
- ``planted``: files that must never run, planted where our child processes start.
"""
