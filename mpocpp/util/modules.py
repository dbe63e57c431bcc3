# Modules imported for a moment and let go, as MicroPython's asyncio package
# loads its parts: on a board every imported module's bytecode lives in the
# heap, so code that runs rarely (a ChangeConfiguration, a connect, an
# operation) is imported when needed and released after.
import sys

keep = set()  # names never released (a board with RAM to spare, tests)


def load(name):
    # The module `name` (a dotted name: the fromlist makes __import__ return
    # the module itself, not its package).
    return __import__(name, None, None, ("_",))


def release(name):
    # Forget the module: its bytecode goes with the last object using it.
    if name in sys.modules and name not in keep:
        del sys.modules[name]
        i = name.rfind(".")
        if i > 0:
            pkg = sys.modules.get(name[:i])
            if pkg is not None:
                try:
                    delattr(pkg, name[i + 1:])
                except AttributeError:
                    pass


def release_all(package):
    # A package and its loaded modules (a library that only handlers use,
    # such as the crypto of mpocpp.security). Nothing to do, and nothing
    # allocated, while the package is not loaded: called after every CALL.
    if package not in sys.modules:
        return
    sub = package + "."
    for name in [n for n in sys.modules if n.startswith(sub)]:
        release(name)
    release(package)
