"""Where records, per-agent event logs and timers live: the `Store` contract and its implementations."""
