"""Errors a user can act on. The CLI prints their message; the server maps them to JSON."""


class LablrError(Exception):
    """Something the user can fix; the message says how."""

    status = 400
    code = "bad_request"

    def __init__(self, message, *, code=None, status=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class ImageError(LablrError):
    """An image that cannot be used: not decodable, truncated, too large."""

    code = "bad_image"


class BundleError(LablrError):
    """A model bundle that is missing, damaged or of another format version."""

    code = "bad_model"
    status = 500


class UnknownPart(LablrError):
    """A plugin part asked for by a name nobody registered."""

    code = "unknown_plugin"
    status = 422


class IncompatibleParts(LablrError):
    """Two parts that cannot work together, such as a scorer that needs what the tag model lacks."""

    code = "incompatible_parts"
    status = 422
