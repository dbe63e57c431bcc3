# Runs one test function of a MicroPython test module inside the unix port.
# usage: micropython mprun.py MODULE TESTNAME
# A test is a plain function or a coroutine function; it fails by raising.
import sys


def main():
    mod_name, test_name = sys.argv[1], sys.argv[2]
    mod = __import__(mod_name)
    fn = getattr(mod, test_name)
    res = fn()
    if res is not None and hasattr(res, "send"):
        import asyncio
        asyncio.run(res)
    print("PASS", mod_name, test_name)


try:
    main()
except Exception as e:  # report and fail with exit code 1
    sys.print_exception(e)
    sys.exit(1)
