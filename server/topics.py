"""Names of the topics events are published on; shared by the core (which addresses them) and the bus."""

SUPERVISORS = "supervisors"


def agent_topic(agent_id: str) -> str:
    return f"agent:{agent_id}"


def consumer_topic(engagement_id: str) -> str:
    return f"consumer:{engagement_id}"


def watch_topic(engagement_id: str) -> str:
    return f"watch:{engagement_id}"
