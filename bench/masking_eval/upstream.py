"""The corpus upstream: an OpenAI-compatible server that answers with corpus documents, cut as ``wire`` says.

    python -m bench.masking_eval.upstream [--port 0] [--pause-ms 1] [--writes 200]   # prints READY <url>

``POST /v1/chat/completions`` picks the document from the request's ``model``:
``corpus/<seed>/<planted_docs>/<benign_docs>/<doc id>/<strategy>`` (strategy ``1``, ``1-20``, ``20-200``;
``stream: true`` is required for those) or ``corpus/.../<doc id>/oneshot`` (a plain ``chat.completion``). The
corpus is regenerated here from the seed and sizes, so nothing secret travels in the request (the gateway's
request rules would refuse a prompt carrying credentials). ``model: probe`` answers a fixed text with an email
address in it, to check that masking is on.

Streams are written segment by segment (``wire.byte_plan``) with ``--pause-ms`` between writes, so the gateway
reads the pieces separately rather than coalesced in the socket buffer.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
from functools import lru_cache

from aiohttp import web

from bench.masking_eval import wire
from bench.masking_eval.corpus import Corpus, generate

PROBE_TEXT = "Please contact probe.user@example.org about CUST-00412345."


@lru_cache(maxsize=16)
def _corpus(seed: int, planted: int, benign: int) -> Corpus:
    return generate(seed, planted_docs=planted, benign_docs=benign)


def model_name(seed: int, planted: int, benign: int, doc_id: str, strategy: str) -> str:
    return f"corpus/{seed}/{planted}/{benign}/{doc_id}/{strategy}"


def _probe_body(stream: bool) -> bytes:
    if not stream:
        return json.dumps({"id": "chatcmpl-probe", "object": "chat.completion", "created": wire.CREATED,
                           "model": "probe", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                   "content": PROBE_TEXT},
                                                          "finish_reason": "stop"}]}).encode()
    chunk = {"id": "chatcmpl-probe", "object": "chat.completion.chunk", "created": wire.CREATED, "model": "probe",
             "choices": [{"index": 0, "delta": {"content": PROBE_TEXT}, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"


def make_app(pause_s: float, writes: int) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        stream = bool(body.get("stream"))
        if model == "probe":
            return web.Response(body=_probe_body(stream),
                                content_type="text/event-stream" if stream else "application/json")
        try:
            _, seed, planted, benign, doc_id, strategy = model.split("/")
            doc = _corpus(int(seed), int(planted), int(benign)).by_id[doc_id]
        except (ValueError, KeyError):
            return web.json_response({"error": {"message": f"unknown corpus model {model!r}"}}, status=404)
        if strategy == "oneshot":
            return web.Response(body=wire.oneshot_body(doc), content_type="application/json")
        if strategy not in wire.STRATEGIES or not stream:
            return web.json_response({"error": {"message": f"bad strategy {strategy!r} / stream"}}, status=400)
        plan = wire.stream_plan(doc, strategy, writes)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i, segment in enumerate(plan.segments):
            if i:
                await asyncio.sleep(pause_s)
            await resp.write(segment)
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _serve(host: str, port: int, pause_s: float, writes: int) -> None:
    runner = web.AppRunner(make_app(pause_s, writes), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY http://{bound_host}:{bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.masking_eval.upstream", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--pause-ms", type=float, default=1.0, help="pause between two socket writes of a stream")
    p.add_argument("--writes", type=int, default=200, help="socket writes per stream (byte-level cuts + 1)")
    args = p.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.pause_ms / 1000, args.writes))


if __name__ == "__main__":
    main()
