"""The upload form of the elders file."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tanfang.imports.services import SOURCE_MAX

MAX_UPLOAD_BYTES = 200 * 1024 * 1024


class EldersUploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("An xlsx workbook or a CSV file (UTF-8 or GB18030), laid out as the template."),
        widget=forms.ClearableFileInput(attrs={"accept": ".xlsx,.csv,text/csv"}),
    )
    source = forms.CharField(
        label=_("Source"),
        max_length=SOURCE_MAX,
        help_text=_("Who the facts come from: a department, a census, a partner."),
        widget=forms.TextInput(attrs={"list": "sources"}),
    )
    source_date = forms.DateField(
        label=_("Source date"),
        help_text=_("The date the facts in the file were true."),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB; import it with the command line."),
                params={"mb": MAX_UPLOAD_BYTES // (1024 * 1024)},
            )
        return upload

    def clean_source_date(self) -> dt.date:
        day: dt.date = self.cleaned_data["source_date"]
        if day > timezone.localdate():
            raise forms.ValidationError(_("The source date cannot be in the future."))
        return day
