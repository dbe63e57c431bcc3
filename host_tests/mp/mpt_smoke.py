# Smoke test: the harness runs code inside MicroPython.
import sys


def test_is_micropython():
    assert sys.implementation.name == "micropython"


async def test_async():
    import asyncio
    await asyncio.sleep_ms(1)
