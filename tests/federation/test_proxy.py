"""The fault tests' proxy loses chunks as TCP recovers them: late, and still in order."""

from __future__ import annotations

import asyncio

from tests.support.proxy import LinkProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_a_lost_chunk_arrives_late_and_the_ones_after_it_wait_behind_it() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, LinkProxy(port, seed=7) as proxy:
            host, proxied = proxy.address.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(proxied))
            proxy.lose(1.0, resend_after=0.3)
            loop = asyncio.get_running_loop()
            began = loop.time()
            writer.write(b"first")
            await writer.drain()
            assert await reader.readexactly(5) == b"first"
            assert loop.time() - began >= 0.3  # lost on the way there and again on the way back: late
            proxy.lose(0.5, resend_after=0.05)
            sent = b"".join(f"{i:05d}".encode() for i in range(200))
            for i in range(0, len(sent), 50):  # separate chunks, some lost, some not
                writer.write(sent[i : i + 50])
                await writer.drain()
                await asyncio.sleep(0.002)
            assert await reader.readexactly(len(sent)) == sent  # in order, nothing missing
            assert proxy.stats.lost > 2
            writer.close()

    asyncio.run(scenario())
