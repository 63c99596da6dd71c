"""Partners' pushes: readings (JSON or CSV) and device events, authenticated per partner.

**Who may call.** Only a data partner's system, with ``Authorization: Partner <token>``
(``tanfang partners token CODE``). These views take no other authentication: a user's
session or ``Token`` is not a partner and gets 401 here, and a partner's token opens
nothing else (every other view authenticates users only).

**How that fits ``DenyByDefault``.** Access is still decided by the project's one
permission class from what the view declares. ``PartnerAuthentication`` puts a
``PartnerPrincipal`` on ``request.user``: the partner acting in the place of its contact
person, with the *data partner* role and the contact's area, active while the partner and
the contact both are. The views declare ``required_capabilities = ANY_ROLE`` ("any principal
with a role and an area", the spelled-out exception of ``permissions.py``); the only
principals that can reach them are partners, because of the authentication class. A partner
with no contact, or whose contact left, is refused (403), as a user without a role and an
area is. What a partner may touch is then scoped by the services: only its own meters
(others' are ``unknown_meter``) and devices.

**Sizes.** Bodies up to ``MAX_BODY_BYTES`` (413 above) and ``MAX_READINGS`` readings per
push; larger deliveries go by file (``tanfang readings import``) or MQTT.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any, NoReturn

import polars as pl
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tanfang.accounts.models import Role
from tanfang.api.permissions import ANY_ROLE, DenyByDefault
from tanfang.monitoring.alerts import device_alert_raise
from tanfang.monitoring.checks import FUTURE_TOLERANCE_S, IngestError, parse_timestamps
from tanfang.monitoring.files import FileError, file_format, read_csv_bytes
from tanfang.monitoring.ingest import batch_report, ingest_frame
from tanfang.monitoring.models import DataPartner, Device, DeviceEvent, IngestSource
from tanfang.monitoring.partners import partner_for_token

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_READINGS = 200_000
KEYWORD = "Partner"


# --------------------------------------------------------------------------- authentication


class PartnerPrincipal:
    """``request.user`` of a partner's push (see the module docstring)."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    id = None
    role = Role.DATA_PARTNER

    def __init__(self, partner: DataPartner) -> None:
        self.partner = partner
        contact = partner.contact
        self.contact = contact
        self.area_id = contact.area_id if contact is not None else None
        self.is_active = bool(
            partner.active
            and contact is not None
            and contact.is_active
            and contact.role == Role.DATA_PARTNER
        )
        self.username = f"partner:{partner.code}"

    def __str__(self) -> str:
        return self.username


class PartnerAuthentication(BaseAuthentication):
    """``Authorization: Partner <token>``; the token's SHA-256 names the partner."""

    def authenticate(self, request: Request) -> tuple[PartnerPrincipal, DataPartner] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid partner header."))
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid partner token.")) from exc
        partner = partner_for_token(token)
        if partner is None:
            raise exceptions.AuthenticationFailed(_("Invalid partner token."))
        return PartnerPrincipal(partner), partner

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


class PartnerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tanfang.api.views_ingest.PartnerAuthentication"
    name = "partnerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Partner <token>`: the data partner's token "
            "(`tanfang partners token CODE`, shown once).",
        }


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class CSVTextParser(BaseParser):
    """``text/csv`` bodies are read as bytes; the readings view parses them."""

    media_type = "text/csv"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return stream.read(MAX_BODY_BYTES + 1)


class PartnerAPIView(APIView):
    """Base of the partners' endpoints (module docstring: authentication, access, sizes)."""

    authentication_classes = (PartnerAuthentication,)
    permission_classes = [DenyByDefault]
    required_capabilities: Any = ANY_ROLE
    parser_classes: tuple[type[BaseParser], ...] = (JSONParser,)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise BodyTooLarge(
                _("The body is larger than %(size)d MB: send the readings as a file.")
                % {"size": MAX_BODY_BYTES // (1024 * 1024)}
            )

    def permission_denied(
        self, request: Request, message: Any = None, code: Any = None
    ) -> NoReturn:
        principal = request.user
        if isinstance(principal, PartnerPrincipal) and not principal.is_active:
            message = _(
                "This partner cannot push now: it is inactive or has no active contact person."
            )
        super().permission_denied(request, message=message, code=code)

    @property
    def partner(self) -> DataPartner:
        principal = self.request.user
        assert isinstance(principal, PartnerPrincipal)
        return principal.partner

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


# --------------------------------------------------------------------------- shapes


class ReadingInput(serializers.Serializer[Any]):
    meter_id = serializers.CharField(help_text="The meter's id, as registered for this partner")
    ts = serializers.CharField(
        help_text="End of the reading's interval: ISO 8601 with a UTC offset "
        "(`2024-05-01T08:15:00+08:00`) or epoch seconds (a number)"
    )
    value = serializers.FloatField(
        help_text="Usage over the interval, or the register for cumulative meters, in the "
        "meter's unit"
    )
    unit = serializers.CharField(
        required=False, help_text="Unit of this value when not the meter's (L, m3, ft3, Wh, kWh)"
    )


class ReadingsInput(serializers.Serializer[Any]):
    readings = ReadingInput(many=True, help_text=f"At most {MAX_READINGS} readings")


class SetAsideSerializer(serializers.Serializer[Any]):
    row = serializers.IntegerField(
        help_text="Position of the reading: 1 = the first of `readings`; in a CSV body, the "
        "line (the header is 1)"
    )
    field = serializers.CharField(help_text="meter_id, ts or value")
    reason = serializers.ChoiceField(
        choices=[
            "unknown_meter",
            "bad_timestamp",
            "bad_value",
            "future_timestamp",
            "negative_usage",
            "absurd_value",
        ]
    )
    message = serializers.CharField(help_text="The reason in the request's language")
    meter_id = serializers.CharField()
    ts = serializers.CharField()
    value = serializers.CharField()


class BatchReportSerializer(serializers.Serializer[Any]):
    batch = serializers.IntegerField(help_text="The batch's id")
    repeated = serializers.BooleanField(
        help_text="This content was delivered before: nothing new was stored; the report is "
        "the first delivery's"
    )
    source = serializers.CharField()  # type: ignore[assignment]
    name = serializers.CharField()
    received_at = serializers.DateTimeField()
    rows = serializers.IntegerField(help_text="Readings received")
    stored = serializers.IntegerField(help_text="Readings stored")
    duplicates = serializers.IntegerField(
        help_text="The same meter and time again within the delivery (stored once; the larger "
        "value wins)"
    )
    quarantined = serializers.IntegerField(help_text="Readings set aside")
    reasons = serializers.DictField(
        child=serializers.IntegerField(), help_text="Readings set aside, by reason"
    )
    first_ts = serializers.DateTimeField(allow_null=True)
    last_ts = serializers.DateTimeField(allow_null=True)
    set_aside = SetAsideSerializer(many=True, help_text="The first 1000 readings set aside")
    set_aside_not_listed = serializers.IntegerField()


class ProblemSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()


class DeviceEventInput(serializers.Serializer[Any]):
    device_id = serializers.CharField(max_length=64)
    kind = serializers.RegexField(
        r"^[a-z_]{1,12}$",
        help_text="`sos`, `fall`, `smoke`, `gas` raise an alert at once; anything else "
        "(`heartbeat`, `battery`) only marks the device seen",
    )
    ts = serializers.CharField(help_text="When it happened: ISO 8601 with an offset, or epoch s")
    message_id = serializers.CharField(
        max_length=80, help_text="Unique per event: the same id again is the same event"
    )


class DeviceEventResult(serializers.Serializer[Any]):
    message_id = serializers.CharField()
    device_id = serializers.CharField()
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    repeated = serializers.BooleanField(help_text="This message_id was received before")
    alert = serializers.IntegerField(allow_null=True, help_text="The alert raised, if any")
    alert_created = serializers.BooleanField()


# --------------------------------------------------------------------------- readings


def _column(values: list[Any], kind: type) -> pl.Series:
    """One column of the JSON readings: typed when every value has the type, else text
    (each reading is then judged on its own)."""
    present = [v for v in values if v is not None]
    if kind is int and all(type(v) is int for v in present):
        return pl.Series(values, dtype=pl.Int64)
    if kind is float and all(type(v) in (int, float) for v in present):
        return pl.Series([None if v is None else float(v) for v in values], dtype=pl.Float64)
    return pl.Series(
        [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
        dtype=pl.String,
    )


def readings_frame(body: Any) -> pl.DataFrame:
    """The JSON body as ``meter_id, ts, value[, unit], row``; a shape error is a 400."""
    if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
        raise exceptions.ValidationError({"readings": [_("A list of readings is required.")]})
    items = body["readings"]
    if len(items) > MAX_READINGS:
        raise exceptions.ValidationError(
            {"readings": [_("At most %(count)d readings per request.") % {"count": MAX_READINGS}]}
        )
    bad = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        raise exceptions.ValidationError(
            {f"readings[{bad}]": [_("Each reading must be an object.")]}
        )
    columns = {
        "meter_id": _column([item.get("meter_id") for item in items], str),
        "ts": _column([item.get("ts") for item in items], int),
        "value": _column([item.get("value") for item in items], float),
        "row": pl.Series(range(1, len(items) + 1), dtype=pl.Int64),
    }
    units = [item.get("unit") for item in items]
    if any(u is not None for u in units):
        columns["unit"] = _column(units, str)
    return pl.DataFrame(columns)


_EXAMPLE = {
    "readings": [
        {"meter_id": "W110101000123", "ts": "2024-05-01T08:15:00+08:00", "value": 12.5},
        {"meter_id": "W110101000123", "ts": 1714523400, "value": 0.0},
    ]
}


class ReadingsIngestView(PartnerAPIView):
    """A partner pushes readings of its meters."""

    parser_classes = (JSONParser, CSVTextParser)

    @extend_schema(
        operation_id="ingest_readings",
        request={"application/json": ReadingsInput, "text/csv": OpenApiTypes.STR},
        responses={
            201: OpenApiResponse(BatchReportSerializer, description="Stored as a new batch"),
            200: OpenApiResponse(
                BatchReportSerializer,
                description="The same body was delivered before (`repeated`): nothing new "
                "is stored; the first delivery's report",
            ),
            400: OpenApiResponse(ProblemSerializer, description="Not readings at all"),
            401: OpenApiResponse(ProblemSerializer, description="No or a wrong partner token"),
            403: OpenApiResponse(
                ProblemSerializer, description="The partner is inactive or has no contact"
            ),
            413: OpenApiResponse(ProblemSerializer, description="Body over 16 MB"),
        },
        summary="Push meter readings (idempotent)",
        description='JSON `{"readings": [{"meter_id", "ts", "value"}, ...]}` (at most '
        f"{MAX_READINGS}) or a CSV body (`text/csv`, header `meter_id,ts,value`, or the "
        "partner's column mapping). Each reading is judged on its own: good ones are "
        "stored, bad ones set aside with their row, field and reason "
        "(docs/monitoring-ingest.md), never taking the good ones down. The same body again "
        "is the same batch: send it again whenever the answer did not arrive. Readings may "
        "come late and in any order; the same meter and time twice is one reading.",
        examples=[OpenApiExample("Two readings", value=_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        raw = request._request.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(_("The body is too large."))
        media = (request.content_type or "").split(";")[0].strip().lower()
        partner = self.partner
        options: dict[str, Any] = {}
        try:
            if media == "text/csv":
                fmt = file_format(partner)
                charset = _charset(request.content_type)
                if charset:
                    fmt = dataclasses.replace(fmt, encoding=charset)
                frame = read_csv_bytes(raw, fmt)
                options = {"ts_format": fmt.ts_format, "tz": fmt.tz, "unit": fmt.unit}
            elif media in ("application/json", ""):
                try:
                    body = json.loads(raw or b"null")
                except (ValueError, UnicodeDecodeError) as exc:
                    raise exceptions.ParseError(_("The body is not valid JSON.")) from exc
                frame = readings_frame(body)
            else:
                raise exceptions.UnsupportedMediaType(media)
            batch = ingest_frame(
                partner,
                frame,
                source=IngestSource.HTTP,
                name=f"http {timezone.now():%Y-%m-%d %H:%M:%S}",
                content_sha256=hashlib.sha256(raw).hexdigest(),
                by=None,
                **options,
            )
        except (FileError, IngestError) as exc:
            raise exceptions.ValidationError({"detail": [str(exc)]}) from exc
        report = batch_report(batch)
        return Response(
            BatchReportSerializer(report).data,
            status=status.HTTP_200_OK if report["repeated"] else status.HTTP_201_CREATED,
        )


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _sep, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip().strip('"')
    return ""


# --------------------------------------------------------------------------- device events


class DeviceEventView(PartnerAPIView):
    """A partner's device reports an event (SOS, fall, smoke, gas, heartbeat...)."""

    @extend_schema(
        operation_id="ingest_device_event",
        request=DeviceEventInput,
        responses={
            201: OpenApiResponse(DeviceEventResult, description="Stored now"),
            200: OpenApiResponse(
                DeviceEventResult, description="This `message_id` was received before"
            ),
            400: OpenApiResponse(ProblemSerializer, description="Unknown device, bad time"),
            401: OpenApiResponse(ProblemSerializer, description="No or a wrong partner token"),
            409: OpenApiResponse(
                ProblemSerializer, description="The `message_id` belongs to another device"
            ),
        },
        summary="Report a device event (idempotent on message_id)",
        description="An alarm (`sos`, `fall`, `smoke`, `gas`) is stored and its alert raised "
        "and assigned in one transaction; other kinds mark the device seen. Fields other "
        "than the four below are kept with the event (battery level, location...). The "
        "device must be one of the partner's.",
        examples=[
            OpenApiExample(
                "SOS pressed",
                value={
                    "device_id": "SOS-0001",
                    "kind": "sos",
                    "ts": "2024-05-01T08:15:00+08:00",
                    "message_id": "SOS-0001-000123",
                    "battery": 87,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        given = DeviceEventInput(data=data)
        given.is_valid(raise_exception=True)
        values = dict(given.validated_data)
        partner = self.partner
        device = Device.objects.filter(partner=partner, device_id=values["device_id"]).first()
        if device is None:
            raise exceptions.ValidationError({"device_id": [_("Unknown device.")]})
        epoch = parse_timestamps(pl.Series([values["ts"]]))[0]
        now = timezone.now()
        if epoch is None:
            raise exceptions.ValidationError(
                {"ts": [_("not a time: ISO 8601 with a UTC offset, or epoch seconds")]}
            )
        if epoch > now.timestamp() + FUTURE_TOLERANCE_S:
            raise exceptions.ValidationError(
                {"ts": [_("the time is more than 5 minutes in the future")]}
            )
        earlier = DeviceEvent.objects.filter(message_id=values["message_id"]).first()
        if earlier is not None and earlier.device_id != device.pk:
            return Response(
                {"detail": _("This message_id belongs to another device.")},
                status=status.HTTP_409_CONFLICT,
            )
        at = dt.datetime.fromtimestamp(epoch, dt.UTC)
        payload = {
            k: v for k, v in (data.items() if isinstance(data, dict) else []) if k not in values
        }
        alert, created = device_alert_raise(
            device,
            kind=values["kind"],
            at=at,
            message_id=values["message_id"],
            payload=payload,
            received_at=now,
        )
        event = DeviceEvent.objects.get(message_id=values["message_id"])
        result = {
            "message_id": event.message_id,
            "device_id": device.device_id,
            "kind": event.kind,
            "at": event.at,
            "repeated": earlier is not None,
            "alert": alert.pk if alert is not None else None,
            "alert_created": created,
        }
        return Response(
            DeviceEventResult(result).data,
            status=status.HTTP_200_OK if earlier is not None else status.HTTP_201_CREATED,
        )
