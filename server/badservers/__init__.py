"""``mtls-server badservers``: every bad server at once, on loopback, to test mTLS *clients*.

The rows and the judge are data in :mod:`mtls_ref.shared.badservers`; this
package serves them (:mod:`.rowservers`, :mod:`.anonymous`), records what each
client did (:mod:`.recorder`), and runs a client against each (:mod:`.runner`).
"""

from mtls_ref.server.badservers.cli import main, run
from mtls_ref.server.badservers.runner import ServedRow, run_command, serve_bad_servers, substitute

__all__ = ["ServedRow", "main", "run", "run_command", "serve_bad_servers", "substitute"]
