"""The MLMD ``filter_query`` language: lexer, parser, type checker and typed AST.

Pure Python (lark only): no SQLAlchemy and no gRPC here. The SQL translation lives in
``lineagedb.store.filter_query``.
"""
