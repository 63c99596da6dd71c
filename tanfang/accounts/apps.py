from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tanfang.accounts"
    label = "accounts"
