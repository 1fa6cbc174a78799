"""Server-side apply (application/apply-patch+yaml). Not yet: 415 names the alternative."""
from __future__ import annotations

from typing import Any, Mapping

from podnet.apiserver.crud import Crud
from podnet.apiserver.resources import ApiResource
from podnet.apiserver.status import ApiStatus


def apply(crud: Crud, res: ApiResource, ns: str, name: str, body: Any,
          params: Mapping[str, str]) -> dict[str, Any]:
    raise ApiStatus(415, "server-side apply is not served yet; use client-side `kubectl apply`")
