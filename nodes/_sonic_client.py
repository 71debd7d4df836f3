"""One Nova Sonic session through the AWS SDK for Python: the asyncio side, run on a ``mg.AsyncioLoop``.

Only this module touches the SDK (``aws-sdk-bedrock-runtime`` with its CRT transport, the ``aws`` extra), and
it imports it when a session opens, so the node library loads without it. Every method is a coroutine the
node calls through ``AsyncioLoop.call``, one at a time per direction, under its own deadline: the SDK has
waits that never end on a dead stream (``await_output`` after a reset before the headers; ``send`` once its
buffer is full; closing the input), which only the caller's deadline and the loop's reaping bound.

Trust: by default the CRT's TLS trusts the system store, or the bundle ``SSL_CERT_FILE`` names. ``ca_file``
replaces it with that bundle (as the AWS CLI's ``AWS_CA_BUNDLE`` does); the CRT transport has no parameter for
it, so a subclass sets its TLS context, and keeps it through the deep copy the client makes of its config.

A pending ``receive`` is never cancelled: the CRT resolves the future it waits on from its own thread when the
stream completes, and raises (``InvalidStateError``, printed as an unraisable exception) if that future was
cancelled meanwhile. So the read runs in a task of its own that a cancelled caller leaves waiting, and
:meth:`SonicStream.close` completes the stream (closing the client) and then lets that task end.

Credentials come only from the SDK's standard chain; nothing here reads, stores or prints them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Sequence
from typing import Any, final

__all__ = ["MISSING", "SonicStream", "missing_sdk"]

MISSING = "nova_sonic needs the AWS SDK: pip install 'mediagraph[aws]'"


def missing_sdk() -> str | None:
    """Why the SDK cannot be used (it is not installed), or ``None``."""
    for module in ("aws_sdk_bedrock_runtime", "awscrt", "smithy_http"):
        if importlib.util.find_spec(module) is None:
            return f"{MISSING} (module {module} is missing)"
    return None


@final
class SonicStream:
    """One bidirectional stream: open it, send input events, receive output events, end the input, close.

    Args:
        model: the model id.
        region: the AWS region (``None``: the SDK's resolution: ``AWS_REGION``, the profile...).
        endpoint: the service's URL (``None``: the SDK's resolution, which honours
            ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``).
        ca_file: a CA bundle to trust instead of the system store.
    """

    def __init__(self, *, model: str, region: str | None, endpoint: str | None, ca_file: str | None) -> None:
        self.model = model
        self.region = region
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.request_id: str | None = None
        self._client: Any = None
        self._stream: Any = None
        self._output: Any = None
        self._receiving: asyncio.Task[Any] | None = None  # the read under way, which nothing may cancel

    def __repr__(self) -> str:
        state = "ready" if self._output is not None else "open" if self._stream is not None else "new"
        return f"<SonicStream {self.model} {state} request={self.request_id}>"

    async def open(self, events: Sequence[dict[str, Any]]) -> None:
        """Start the stream, send the opening ``events`` and wait for the service's response headers."""
        from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
        from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
        from aws_sdk_bedrock_runtime.models import InvokeModelWithBidirectionalStreamOperationInput

        overrides: dict[str, Any] = {"transport": _transport(self.ca_file), "max_attempts": 1}
        if self.endpoint is not None:
            overrides["endpoint_uri"] = self.endpoint
        if self.region is not None:
            overrides["region"] = self.region
        config = await AsyncBedrockRuntimeConfig.resolve(**overrides)
        self._client = AsyncBedrockRuntimeClient(config=config)
        self._stream = await self._client.invoke_model_with_bidirectional_stream(
            InvokeModelWithBidirectionalStreamOperationInput(model_id=self.model)
        )
        await self.send(events)
        response, self._output = await self._stream.await_output()
        self.request_id = getattr(getattr(response, "response_metadata", None), "request_id", None)

    async def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Send input events, in order."""
        from aws_sdk_bedrock_runtime.models import (
            BidirectionalInputPayloadPart,
            InvokeModelWithBidirectionalStreamInputChunk,
        )

        for event in events:
            part = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
            await self._stream.input_stream.send(InvokeModelWithBidirectionalStreamInputChunk(value=part))

    async def receive(self) -> dict[str, Any] | None:
        """The next output event (the Nova Sonic JSON), or ``None`` at the end of the output.

        Raises:
            Exception: what the service sent instead (the SDK's modeled exception, ``ModelTimeoutException``
                at the session limit), or the transport's error.
        """
        if self._receiving is None or self._receiving.done():
            self._receiving = asyncio.ensure_future(self._output.receive())
        event = await asyncio.shield(self._receiving)
        self._receiving = None
        if event is None:
            return None
        payload = getattr(getattr(event, "value", None), "bytes_", None)
        if payload is None:
            return {"event": {"unknown": {"type": type(event).__name__}}}
        decoded: dict[str, Any] = json.loads(payload)
        return decoded

    async def end_input(self) -> None:
        """End the input (after the closing events)."""
        await self._stream.input_stream.close()

    async def close(self) -> None:
        """Close the client and its connections (nothing if the stream never started); a read left waiting
        then ends with the stream (given a second, never cancelled)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
        if self._receiving is not None and not self._receiving.done():
            await asyncio.wait([self._receiving], timeout=1.0)


def _transport(ca_file: str | None) -> Any:
    from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig

    config = AWSCRTHTTPClientConfig(force_http_2=True)  # the service streams both ways over HTTP/2 only
    if ca_file is None:
        return AWSCRTHTTPClient(client_config=config)
    from awscrt import io as crt_io

    @final
    class TrustingTransport(AWSCRTHTTPClient):
        def __init__(self) -> None:
            super().__init__(client_config=config)
            options = crt_io.TlsContextOptions()
            options.override_default_trust_store_from_path(None, ca_file)
            self._tls_ctx = crt_io.ClientTlsContext(options)

        def __deepcopy__(self, memo: dict[int, Any]) -> TrustingTransport:
            return self  # the client deep-copies its config; the copy must keep this trust (and pool)

    return TrustingTransport()
