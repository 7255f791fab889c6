"""The statuses an alert can have, in one place (storage, the lifecycle, the screens).

``raised`` by the stream job; ``escalated``, ``silenced``, ``acknowledged``,
``resolved``, ``auto_resolved`` by people and the alert manager
(``backend.alerting.lifecycle``); ``cleared`` when its condition ended before anyone
acted. The values are what Cassandra stores and ``alerts.lifecycle`` carries.
"""

from __future__ import annotations

from enum import StrEnum


class AlertStatus(StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"
    SILENCED = "silenced"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    AUTO_RESOLVED = "auto_resolved"
    CLEARED = "cleared"


# Somebody still has to see it (it stays on the ward screen and in the inbox).
ACTIVE = frozenset({AlertStatus.RAISED, AlertStatus.ESCALATED, AlertStatus.SILENCED,
                    AlertStatus.ACKNOWLEDGED})
# Somebody still has to respond ("silenced" only paused the sound).
NEEDS_ACTION = frozenset({AlertStatus.RAISED, AlertStatus.ESCALATED, AlertStatus.SILENCED})
ENDED = frozenset({AlertStatus.RESOLVED, AlertStatus.AUTO_RESOLVED, AlertStatus.CLEARED})
