from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "tanfang.referrals"
    label = "referrals"
    verbose_name = "Referrals"
