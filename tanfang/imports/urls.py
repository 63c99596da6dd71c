"""Pages of the import app, under ``/import/``."""

from django.urls import path

from tanfang.imports import views

urlpatterns = [
    path("elders/", views.elders_upload, name="import-elders"),
    path("elders/template.xlsx", views.elders_template, name="import-elders-template"),
]
