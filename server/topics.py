"""Names of the topics events are published on; shared by the core (which addresses them) and the bus."""

SUPERVISORS = "supervisors"


AGENT = "agent:"


def agent_topic(agent_id: str) -> str:
    return f"{AGENT}{agent_id}"


def agent_of(topic: str) -> str | None:
    """The agent a topic is for, None for any other topic."""
    return topic[len(AGENT) :] if topic.startswith(AGENT) else None


def consumer_topic(engagement_id: str) -> str:
    return f"consumer:{engagement_id}"


def watch_topic(engagement_id: str) -> str:
    return f"watch:{engagement_id}"
