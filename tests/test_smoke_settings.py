from django.conf import settings


def test_chinese_is_the_default_language() -> None:
    assert settings.LANGUAGE_CODE == "zh-hans"
