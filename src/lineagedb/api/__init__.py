"""Transport edge: gRPC servicers and the status mapping; never imports sqlalchemy."""
