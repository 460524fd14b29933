# An asyncio program as servers and tools are written: one event loop
# (whose self-pipe is a socketpair) runs a unix-socket echo server and
# eight clients; each client sends length-prefixed messages from 1 byte
# to 300 KB and checks the SHA-256 and the reversed bytes that come back;
# the server closes, the clients see end of file. Worker threads wake the
# loop through call_soon_threadsafe and run_in_executor (writes to the
# self-pipe); a socketpair is driven with loop.sock_sendall/sock_recv.
# Prints "PASS dyn-asyncio".
import asyncio
import hashlib
import os
import random
import socket
import sys
import threading

PATH = "echo.sock"
CLIENTS = 8
SIZES = [1, 100, 4096, 65536, 300000]


async def handle(reader, writer):
    served = 0
    while True:
        n = int.from_bytes(await reader.readexactly(4), "big")
        if n == 0:
            break
        data = await reader.readexactly(n)
        writer.write(hashlib.sha256(data).digest() + data[::-1])
        await writer.drain()
        served += 1
    writer.close()
    await writer.wait_closed()


async def client(i):
    rnd = random.Random(i)
    r, w = await asyncio.open_unix_connection(PATH)
    for n in SIZES:
        data = rnd.randbytes(n)
        w.write(n.to_bytes(4, "big") + data)
        await w.drain()
        digest = await r.readexactly(32)
        back = await r.readexactly(n)
        if digest != hashlib.sha256(data).digest() or back != data[::-1]:
            raise SystemExit(f"FAIL dyn-asyncio: client {i} size {n}: wrong echo")
    w.write((0).to_bytes(4, "big"))
    await w.drain()
    rest = await r.read()
    if rest != b"":
        raise SystemExit(f"FAIL dyn-asyncio: client {i}: {len(rest)} bytes after the end")
    w.close()
    await w.wait_closed()
    return i


async def pair_and_threads():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    blob = random.Random(99).randbytes(200000)
    send = asyncio.ensure_future(loop.sock_sendall(a, blob))
    got = bytearray()
    while len(got) < len(blob):
        chunk = await loop.sock_recv(b, 65536)
        if not chunk:
            break
        got += chunk
    await send
    if bytes(got) != blob:
        raise SystemExit("FAIL dyn-asyncio: socketpair bytes differ")
    a.close()
    b.close()
    fut = loop.create_future()
    threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, "woken")).start()
    if await fut != "woken":
        raise SystemExit("FAIL dyn-asyncio: call_soon_threadsafe")
    sums = await asyncio.gather(
        *(loop.run_in_executor(None, lambda k=k: sum(range(k * 1000))) for k in range(16))
    )
    if sums != [sum(range(k * 1000)) for k in range(16)]:
        raise SystemExit("FAIL dyn-asyncio: run_in_executor")


async def main():
    try:
        os.unlink(PATH)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(handle, PATH)
    done = await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    if sorted(done) != list(range(CLIENTS)):
        raise SystemExit("FAIL dyn-asyncio: clients")
    server.close()
    await server.wait_closed()
    await pair_and_threads()
    os.unlink(PATH)


asyncio.run(asyncio.wait_for(main(), 240))
print("PASS dyn-asyncio")
sys.stdout.flush()
