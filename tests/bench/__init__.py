"""`make bench`: our server against openssl s_server, nginx and a bare trio SSLStream server."""
