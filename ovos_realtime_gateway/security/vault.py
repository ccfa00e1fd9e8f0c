"""Reading `vault:MOUNT/PATH#FIELD` secrets from Vault or OpenBao (KV v2) through `hvac`.

Token auth (`vault.token`, else VAULT_TOKEN) or AppRole (`vault.role_id` + `vault.secret_id`);
an AppRole token that expired or was revoked is replaced by logging in again. Blocking: the
SecretResolver calls it on its own thread, never on the event loop.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import hvac
from hvac import exceptions as hvac_errors

from .secret_refs import Reference, SecretError, read_local

if TYPE_CHECKING:
    from ..settings import VaultSettings

log = logging.getLogger("ovos_realtime.secrets")


class VaultForbidden(SecretError):
    """Vault refused: the token may not read the secret, or it expired or was revoked."""


class VaultReader:
    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self.url = settings.url or os.environ.get("VAULT_ADDR", "")
        if not self.url:
            raise SecretError("no Vault server: set vault.url or the VAULT_ADDR environment variable")
        self._client: Any = None

    def _token(self) -> str:
        if self.settings.token is not None:
            try:
                return read_local(self.settings.token)
            except SecretError as exc:
                raise SecretError(f"vault.token: {exc}") from None
        token = os.environ.get("VAULT_TOKEN", "")
        if not token:
            raise SecretError("no Vault token: set vault.token, vault.role_id/secret_id or VAULT_TOKEN")
        return token

    def _login(self) -> Any:
        s = self.settings
        client = hvac.Client(  # type: ignore[no-untyped-call]  # the library has no type hints
            url=self.url,
            namespace=s.namespace,
            verify=str(s.ca_cert.expanduser()) if s.ca_cert else True,
            timeout=s.timeout_seconds,
        )
        if s.role_id is not None and s.secret_id is not None:
            try:
                secret_id = read_local(s.secret_id)
            except SecretError as exc:
                raise SecretError(f"vault.secret_id: {exc}") from None
            self._call(lambda: client.auth.approle.login(s.role_id, secret_id, mount_point=s.approle_mount))
            log.info("logged in to Vault at %s with AppRole (mount %s)", self.url, s.approle_mount)
        else:
            client.token = self._token()
        return client

    def _call(self, request: Any) -> Any:
        try:
            return request()
        except hvac_errors.InvalidPath:
            raise SecretError("no such secret in Vault (the mount or path does not exist)") from None
        except hvac_errors.Forbidden:
            raise VaultForbidden("Vault refused: the token may not read it (policy), or it expired") from None
        except (hvac_errors.VaultError, OSError) as exc:  # requests' errors are OSErrors
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SecretError(f"cannot reach Vault at {self.url}: {reason}") from None

    def read(self, reference: Reference) -> str:
        """The field of a KV v2 secret, as it is now."""
        mount, _, path = reference.target.partition("/")
        if self._client is None:
            self._client = self._login()
        try:
            answer = self._fetch(mount, path)
        except VaultForbidden:
            if self.settings.role_id is None:
                raise
            log.info("Vault refused a read: logging in again with AppRole (the token may have expired)")
            self._client = self._login()  # its token expired or was revoked: log in again, once
            answer = self._fetch(mount, path)
        data = (answer or {}).get("data", {}).get("data") or {}
        value = data.get(reference.field)
        if value is None or value == "":
            raise SecretError(f"the secret {reference.target} has no field '{reference.field}'")
        return str(value)

    def _fetch(self, mount: str, path: str) -> Any:
        kv = self._client.secrets.kv.v2
        return self._call(
            lambda: kv.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
        )
