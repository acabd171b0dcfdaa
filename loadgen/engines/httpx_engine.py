"""The httpx engine: the client the design card names, with every limit set explicitly.

Why keep it although it is the most expensive engine here (DESIGN.md §4: ~1.7 ms of CPU
per request): it is the reference client many users would reach for, it speaks HTTP/2
where a remote target needs it, and calibration shows how far it is from the cheaper
engines.  httpx's defaults (100 connections, 5 s timeouts, proxies from the environment)
are all overridden: a benchmark must not inherit silent caps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx

from loadgen.classify import classify_os_error, describe_exception
from loadgen.engine import Engine, EngineError, EngineOptions, Response
from loadgen.request import Request

__all__ = ["HttpxEngine", "map_httpx_error"]

# h11 words for "the peer went away" as opposed to "the peer sent nonsense"
_DISCONNECT_WORDS = ("disconnected", "peer closed", "closed connection", "connection closed", "incomplete")


def map_httpx_error(exc: BaseException) -> EngineError:
    """An httpx (or asyncio) exception -> EngineError with a shared error class."""
    detail = describe_exception(exc)
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        return EngineError("timeout", detail)
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        kind = "reset" if any(word in text for word in _DISCONNECT_WORDS) else "protocol"
        return EngineError(kind, detail)
    if isinstance(exc, httpx.ConnectError):
        return EngineError(classify_os_error(exc) or "other", detail)
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return EngineError(classify_os_error(exc) or "reset", detail)
    if isinstance(exc, httpx.DecodingError):  # e.g. a corrupt gzip body
        return EngineError("protocol", detail)
    return EngineError(classify_os_error(exc) or "other", detail)


def _head_size(response: httpx.Response) -> int:
    """Bytes of the status line and headers as they came over the wire (HTTP/1.1)."""
    size = len(response.http_version) + len(response.reason_phrase) + 7  # "HTTP/1.1 200 OK\r\n"
    for name, value in response.headers.raw:
        size += len(name) + len(value) + 4
    return size + 2


class HttpxEngine(Engine):
    """httpx.AsyncClient(s) over HTTP/1.1 keep-alive with explicit limits and timeouts.

    Sharding: httpcore 1.0's pool re-scans every connection for every connection on each
    request and release (O(C^2) work per request), which at 64 in flight costs several
    ms of CPU per request -- the client, not the target, then sets the figures.  So the
    ``max_connections`` budget is split over ``ceil(C / SHARD_SIZE)`` clients of at most
    ``SHARD_SIZE`` connections each, and each request goes to the shard with the fewest
    requests in flight (ties: the first).  The total connection cap is unchanged and
    every request is still sent by an ``httpx.AsyncClient``.

    Each blueprint is turned into an ``httpx.Request`` once per shard (cached by
    identity; :meth:`prepare` does it before the step, else the first send does) and
    re-sent, so per-request work is httpx's own, not ours.  The whole
    request is also bounded by ``timeout_s`` (httpx's timeouts are per phase: a server
    trickling bytes would otherwise never time out).
    """

    name = "httpx"
    SHARD_SIZE = 8

    def __init__(self, options: EngineOptions) -> None:
        super().__init__(options)
        self._clients: list[httpx.AsyncClient] = []
        self._in_flight: list[int] = []
        self._built: list[dict[int, tuple[Request, httpx.Request]]] = []
        self._pending: list[Request] = []  # prepared before open(): built when the shards exist
        self._sizes: list[int] = []  # connections of each shard
        self._load: dict[httpx.AsyncClient, int] = {}  # requests in flight per client
        self._retired: set[httpx.AsyncClient] = set()  # replaced, closed when their last request ends
        self._closing: set[asyncio.Task[None]] = set()
        self.replaced = 0  # for tests: shards given a fresh client after a cancelled request

    @classmethod
    def version(cls) -> str:
        return httpx.__version__

    async def open(self) -> None:
        await self.close()
        budget = self.options.max_connections
        while budget > 0:
            size = min(self.SHARD_SIZE, budget)
            budget -= size
            self._clients.append(self._new_client(size))
            self._sizes.append(size)
        self._in_flight = [0] * len(self._clients)
        self._built = [{} for _ in self._clients]
        pending, self._pending = self._pending, []
        self.prepare(pending)

    def _new_client(self, size: int) -> httpx.AsyncClient:
        options = self.options
        return httpx.AsyncClient(
            base_url=options.base_url,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=60.0),
            timeout=httpx.Timeout(
                options.timeout_s,
                connect=options.connect_timeout_s,
                pool=options.timeout_s,  # waiting for a free connection counts too
            ),
            verify=options.verify_tls,
            trust_env=False,  # no proxy or netrc from the environment: loopback stays loopback
            follow_redirects=False,  # a 3xx is an answer to classify, not to follow
            http2=False,
        )

    def _replace(self, shard: int) -> None:
        """Give ``shard`` a fresh client; the old one closes once its last request is done.

        Why: a request cancelled by the whole-request bound while httpcore's pool is
        contended can leave a pool slot that is never given back (encode/httpcore#1093,
        open for 1.0.9); after a hung target every slot of a shard was lost that way and
        its requests timed out long after the target was back (tests/loadgen/
        test_target_restart.py).  A fresh pool per shard after such a cancellation
        bounds the damage to the requests already in flight.
        """
        old = self._clients[shard]
        self._clients[shard] = self._new_client(self._sizes[shard])
        self.replaced += 1
        if self._load.get(old, 0):
            self._retired.add(old)  # closed by the send that finishes its last request
        else:
            self._close_later(old)

    def _close_later(self, client: httpx.AsyncClient) -> None:
        self._load.pop(client, None)
        task = asyncio.get_running_loop().create_task(client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def prepare(self, requests: Iterable[Request]) -> None:
        """Build each blueprint's ``httpx.Request`` on every shard now, outside the timing.

        Before :meth:`open` the blueprints are kept and built when the shards exist.
        """
        if not self._clients:
            self._pending.extend(requests)
            return
        for request in requests:
            for shard in range(len(self._clients)):
                self._request(shard, request)

    def _request(self, shard: int, request: Request) -> httpx.Request:
        built = self._built[shard]
        cached = built.get(id(request))
        if cached is not None and cached[0] is request:
            return cached[1]
        client = self._clients[shard]
        httpx_request = client.build_request(
            request.method, request.path, content=request.body, headers=request.headers
        )
        built[id(request)] = (request, httpx_request)  # keeps the blueprint alive, so its id stays unique
        return httpx_request

    async def send(self, request: Request) -> Response:
        if not self._clients:
            raise RuntimeError("HttpxEngine.send() called before open() or after close()")
        in_flight = self._in_flight
        shard = in_flight.index(min(in_flight)) if len(in_flight) > 1 else 0
        in_flight[shard] += 1
        client = self._clients[shard]
        load = self._load
        load[client] = load.get(client, 0) + 1
        try:
            async with asyncio.timeout(self.options.timeout_s):
                response = await client.send(self._request(shard, request))
        except TimeoutError as exc:  # the whole-request bound above: the request was cancelled
            if self._clients and self._clients[shard] is client:
                self._replace(shard)  # its pool may have lost a slot to the cancellation
            detail = f"no complete response within timeout_s={self.options.timeout_s:g} s"
            raise EngineError("timeout", detail) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise map_httpx_error(exc) from exc
        except AttributeError as exc:
            if "getpeername" not in str(exc):
                raise
            # anyio/httpcore asked a socket the peer had just reset for its address: the transport
            # was already gone ("'NoneType' object has no attribute 'getpeername'", seen when a
            # target is killed mid-request: tests/loadgen/test_target_restart.py). A reset, not a bug of ours.
            raise EngineError(
                "reset", f"the connection was closed under the request ({describe_exception(exc)})"
            ) from exc
        finally:
            in_flight[shard] -= 1
            load[client] -= 1
            if client in self._retired and not load[client]:
                self._retired.discard(client)
                self._close_later(client)
        body = response.content
        bytes_in = _head_size(response) + response.num_bytes_downloaded
        return Response(status=response.status_code, body=body, bytes_in=bytes_in)

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        retired, self._retired = list(self._retired), set()
        self._built = []
        self._in_flight = []
        self._sizes = []
        self._load = {}
        for client in clients + retired:
            await client.aclose()
        closing = list(self._closing)
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
