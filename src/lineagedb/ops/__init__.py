"""Operations: MLMD flag compatibility, TLS, health, metrics, logging, worker processes."""
