"""Creating the catalogue's topics (and their dead-letter topics) on the broker."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from core.settings import Settings
from events.catalogue import CATALOGUE
from events.consumer import dead_letter_topic


def ensure_topics(settings: Settings, *, replication: int = 1) -> list[str]:
    """Create missing topics; returns the names created."""
    wanted: dict[str, int] = {}
    for spec in CATALOGUE:
        name = settings.topic(spec.topic.value)
        wanted[name] = spec.partitions
        wanted[dead_letter_topic(name)] = 1
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers,
                             client_id="ridehail-admin", request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, partitions, replication)
                   for name, partitions in wanted.items() if name not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
