"""The marker of a database that holds the synthetic demo city."""

from __future__ import annotations

from django.db import models


class DemoBuild(models.Model):
    """One build of the demo city: its parameters, and whether it ran to the end.

    ``tanfang demo`` reads it to start fast when the city is already there, to rebuild when
    the parameters differ or a build was interrupted, and to refuse to touch a database that
    holds anything else.
    """

    seed = models.BigIntegerField()
    elders = models.PositiveIntegerField()
    version = models.PositiveSmallIntegerField()
    complete = models.BooleanField(default=False)
    built_on = models.DateField()
    started_at = models.DateTimeField()
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"demo seed={self.seed} elders={self.elders} v{self.version}"
