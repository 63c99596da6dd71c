"""The upload page of the elders file and its template download."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.imports.columns import TEMPLATE_CHILD_GROUPS
from tanfang.imports.forms import EldersUploadForm
from tanfang.imports.models import ImportRun
from tanfang.imports.services import import_file
from tanfang.imports.template import documented_columns, write_elders_template
from tanfang.registry.models import Department

TEMPLATE_NAME = "elders-template.xlsx"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@requires(Capability.IMPORT_ELDERS)
def elders_upload(request: HttpRequest) -> HttpResponse:
    """Upload a file; it is checked whole and written only without errors, in the user's
    area (a row outside it is an error)."""
    if request.method == "POST":
        form = EldersUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            with tempfile.TemporaryDirectory(prefix="tanfang-import-") as folder:
                path = Path(folder) / "upload"
                with path.open("wb") as stream:
                    for chunk in upload.chunks():
                        stream.write(chunk)
                outcome = import_file(
                    kind="elders",
                    path=path,
                    actor=request.user,
                    source=form.cleaned_data["source"],
                    source_date=form.cleaned_data["source_date"],
                    file_name=upload.name,
                    via="web",
                )
            status = 200 if outcome.ok else 422
            return render(
                request, "imports/elders_result.html", {"outcome": outcome}, status=status
            )
    else:
        form = EldersUploadForm(initial={"source_date": timezone.localdate()})
    return render(
        request,
        "imports/elders_upload.html",
        {
            "form": form,
            "sources": Department.labels,
            "columns": documented_columns(),
            "child_groups": TEMPLATE_CHILD_GROUPS,
            "runs": ImportRun.objects.filter(by_id=request.user.pk, kind="elders")[:10],
        },
    )


@requires(Capability.IMPORT_ELDERS)
def elders_template(request: HttpRequest) -> FileResponse:
    buffer = io.BytesIO()
    write_elders_template(buffer)
    buffer.seek(0)
    return FileResponse(buffer, as_attachment=True, filename=TEMPLATE_NAME, content_type=XLSX)
