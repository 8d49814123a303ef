"""Who is calling (authentication) and what they may do (authorization).

Pure Python with no gRPC or SQLAlchemy: the transport edge (lineagedb.api) hands
it call metadata and the peer certificate, and hands the store the namespaces a
caller may read.
"""
