"""Stand-in service types (see the package docstring)."""


class _Service:
    class Request:
        pass

    class Response:
        pass


class LoadNode(_Service):
    pass


class UnloadNode(_Service):
    pass


class ListNodes(_Service):
    pass
