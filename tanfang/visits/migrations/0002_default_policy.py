"""The plan's visit policy as data: monthly until the end of 2025, weekly from 2026; holiday
visits at Spring Festival and Mid-Autumn; which visits count. All of it is editable in the admin."""

import datetime as dt

from django.db import migrations


def seed(apps, schema_editor):
    VisitRule = apps.get_model("visits", "VisitRule")
    HolidaySurge = apps.get_model("visits", "HolidaySurge")
    CountingRule = apps.get_model("visits", "CountingRule")
    VisitRule.objects.get_or_create(
        code="plan-monthly",
        defaults={
            "name": "京民养老发〔2024〕1号: monthly",
            "effective_from": dt.date(2024, 1, 1),
            "effective_to": dt.date(2025, 12, 31),
            "frequency": "month",
        },
    )
    VisitRule.objects.get_or_create(
        code="plan-weekly",
        defaults={
            "name": "京民养老发〔2024〕1号: weekly",
            "effective_from": dt.date(2026, 1, 1),
            "frequency": "week",
        },
    )
    HolidaySurge.objects.get_or_create(
        code="traditional-holidays",
        defaults={"holidays": ["Spring Festival", "Mid-autumn Festival"], "days_before": 3},
    )
    CountingRule.objects.get_or_create(
        effective_from=dt.date(2024, 1, 1),
        defaults={"modes": ["phone", "online", "in_home", "combined"], "outcomes": ["met"]},
    )


class Migration(migrations.Migration):
    dependencies = [("visits", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
