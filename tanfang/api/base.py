"""What every API view shares: scoped querysets, error mapping, no caching of personal data."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.registry.identity import IdentifierError
from tanfang.registry.models import Elder
from tanfang.registry.services import AccessDenied, RegistryError


class ScopedAPIView(GenericAPIView):
    """Base of every Tanfang endpoint.

    - ``required_capabilities`` must be set by each subclass (``DenyByDefault`` refuses it
      otherwise); ``write_capabilities`` are needed in addition for unsafe methods;
    - rows come only from ``get_queryset()``, which subclasses build on ``visible_to``; a row
      outside it is a 404, exactly like one that does not exist, so the API never tells
      whether a record exists elsewhere;
    - the registry's refusals become 400 (bad input) or 403 (not allowed);
    - responses are marked ``no-store``: they may carry personal data.
    """

    required_capabilities: Any = None
    write_capabilities: tuple[Any, ...] = ()
    parser_classes = (JSONParser,)
    # Token first, so a request without credentials gets 401 with ``WWW-Authenticate: Token``.
    authentication_classes = (TokenAuthentication, SessionAuthentication)
    pagination_class: Any = None  # lists choose theirs (pagination.py)

    def get_queryset(self) -> Any:
        return Elder.objects.visible_to(self.request.user)

    def get_elder(self, pk: Any) -> Elder:
        elder = (
            Elder.objects.visible_to(self.request.user)
            .select_related("community")
            .filter(pk=pk)
            .first()
        )
        if elder is None:
            raise Http404
        return elder

    def query(self, serializer_class: Any) -> dict[str, Any]:
        """Validated query parameters."""
        params = serializer_class(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return dict(params.validated_data)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, AccessDenied):
            exc = exceptions.PermissionDenied()
        elif isinstance(exc, IdentifierError | RegistryError):
            exc = exceptions.ValidationError({"detail": [str(exc)]})
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response
