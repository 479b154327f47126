"""How events reach the sockets that want them: the `Broker` contract and its implementations."""
