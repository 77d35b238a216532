"""An S2 endpoint whose TLS certificate the client cannot verify is a configuration error.

``HttpBasin`` verifies S2's certificate against the system's trust store (httpx2's default).
When that fails (a container without CA certificates, a proxy's own CA, a wrong endpoint)
the same request fails the same way until the trust changes, so it must be told apart from
an outage: ``S2CertificateError`` (``permanent``), raised at once, not after the retries.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme

from resumable_chat.s2 import HttpBasin, S2CertificateError, S2Error, check_basin


@pytest.fixture
async def tls_endpoint() -> AsyncIterator[tuple[str, trustme.CA]]:
    """A TLS listener on 127.0.0.1 that hangs up after the handshake, and the CA that issued
    its certificate (which nobody trusts unless told to)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", ca
    finally:
        server.close()
        await server.wait_closed()


def _basin(url: str, **options: float) -> HttpBasin:
    return HttpBasin(
        "my-basin-1", access_token="tok", account_endpoint=url, basin_endpoint=url, **options
    )


async def test_an_unverifiable_certificate_fails_the_start_up_check_at_once(
    tls_endpoint: tuple[str, trustme.CA],
) -> None:
    url, _ = tls_endpoint
    basin = _basin(url, retry_base_s=1.0)  # a retried failure would take seconds
    try:
        started = time.monotonic()
        with pytest.raises(S2CertificateError) as caught:
            await check_basin(basin)
        assert time.monotonic() - started < 1.0  # not retried
        error = caught.value
        assert error.permanent
        assert "certificate" in error.message and "SSL_CERT_FILE" in error.message
        with pytest.raises(S2CertificateError):  # every call, not only the check
            await basin.check_tail("chat-1")
    finally:
        await basin.aclose()


async def test_the_endpoint_passes_the_handshake_once_its_ca_is_trusted(
    tls_endpoint: tuple[str, trustme.CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SSL_CERT_FILE`` (as the error message advises) replaces the trust store: the
    handshake passes, and what fails next (the listener hangs up) is transient."""
    url, ca = tls_endpoint
    with ca.cert_pem.tempfile() as bundle:
        monkeypatch.setenv("SSL_CERT_FILE", bundle)
        basin = _basin(url, retry_base_s=0.01, deadline_s=1.0)
        try:
            with pytest.raises(S2Error) as caught:
                await basin.check_tail("chat-1")
            assert not isinstance(caught.value, S2CertificateError)
            assert not caught.value.permanent
        finally:
            await basin.aclose()
