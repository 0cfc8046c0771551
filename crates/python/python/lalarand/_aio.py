"""asyncio support for the native classes: ``await handle`` and ``async for r in stream``.

The native ``JobHandle.__await__`` and ``ResultStream.__anext__`` call these; nothing here is
public API.
"""

import asyncio

# How long one poll of a result stream waits on the executor thread: a cancelled ``async for``
# releases its thread within this time.
_POLL_S = 0.1


def await_handle(handle):
    """The iterator ``await handle`` drives: an asyncio future settled from the handle's
    done-callback (run on the server's delivery thread, handed to the loop thread-safely)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle():
        if future.cancelled():
            return
        error = handle.exception(timeout=0)
        if error is None:
            future.set_result(handle.result(timeout=0))
        else:
            future.set_exception(error)

    handle.add_done_callback(lambda _: loop.call_soon_threadsafe(settle))
    return future.__await__()


async def stream_anext(stream):
    """The next result of ``stream``, waited for on the loop's default executor in short polls;
    ``StopAsyncIteration`` once the server stopped and every result was read."""
    loop = asyncio.get_running_loop()
    while True:
        got = await loop.run_in_executor(None, stream._poll, _POLL_S)
        if got is False:
            raise StopAsyncIteration
        if got is not None:
            return got
