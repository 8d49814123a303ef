"""ml_metadata.errors: the same classes as lineagedb.client.errors (one set, so either name catches)."""

from lineagedb.client.errors import *  # noqa: F403
from lineagedb.client.errors import exception_type_from_error_code, make_exception  # noqa: F401
