"""Users, roles and grants on an authenticating ``mlflow server`` (its basic-auth app).

What an MLflow admin does for a team, through MLflow 3.17's own REST API
(``mlflow.server.auth.routes``; the per-resource permission endpoints of older
releases answer 404). Every call is made with the credentials given, never
the process's, so a command can act as the stack's admin without exporting them.
Grants are upserts here (MLflow refuses a second grant of the same resource),
and never lower a permission someone already holds.
"""

from __future__ import annotations

from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response

from runway.store.http import explain

LEVELS = ("READ", "USE", "EDIT", "MANAGE")
_V2, _V3 = "/api/2.0/mlflow", "/api/3.0/mlflow"


class routes:
    CREATE_USER = f"{_V2}/users/create"
    GET_CURRENT_USER = f"{_V2}/users/current"
    UPDATE_USER_PASSWORD = f"{_V2}/users/update-password"
    GRANT_USER_PERMISSION = f"{_V3}/users/permissions/grant"
    REVOKE_USER_PERMISSION = f"{_V3}/users/permissions/revoke"
    LIST_USER_PERMISSIONS = f"{_V3}/users/permissions/list"
    LIST_ROLES = f"{_V3}/roles/list"
    CREATE_ROLE = f"{_V3}/roles/create"
    LIST_ROLE_PERMISSIONS = f"{_V3}/roles/permissions/list"
    UPDATE_ROLE_PERMISSION = f"{_V3}/roles/permissions/update"
    ADD_ROLE_PERMISSION = f"{_V3}/roles/permissions/add"
    LIST_USER_ROLES = f"{_V3}/users/roles/list"
    ASSIGN_ROLE = f"{_V3}/roles/assign"


WORKSPACE = "default"  # the only workspace while MLflow's workspaces are off


class Admin:
    """Admin calls to the server at ``uri`` as ``username``."""

    def __init__(self, uri: str, username: str, password: str) -> None:
        self.uri = uri
        self.creds = MlflowHostCreds(uri, username=username, password=password)

    def _call(self, endpoint: str, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = http_request(self.creds, endpoint, method, **kwargs)
            verify_rest_response(response, endpoint)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
            known = explain(exc)
            if known is None:
                raise
            raise known from exc
        return response.json() if response.content else {}

    def whoami(self) -> str:
        """The user these credentials authenticate as."""
        return str(self._call(routes.GET_CURRENT_USER, "GET")["user"]["username"])

    def create_user(self, username: str, password: str) -> bool:
        """Create ``username``; False (and its password untouched) if it exists."""
        try:
            self._call(
                routes.CREATE_USER, "POST", json={"username": username, "password": password}
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return False
        return True

    def ensure_user(self, username: str, password: str) -> bool:
        """Create ``username`` (False if it existed: then its password is set to ``password``)."""
        try:
            self._call(
                routes.CREATE_USER, "POST", json={"username": username, "password": password}
            )
            return True
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        self._call(
            routes.UPDATE_USER_PASSWORD, "PATCH", json={"username": username, "password": password}
        )
        return False

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> str:
        """At least ``permission`` for ``username``; the permission held afterwards."""
        held = self.permission(username, resource_type, resource_id)
        if held is not None and LEVELS.index(held) >= LEVELS.index(permission):
            return held
        if held is not None:  # the server refuses a second grant: revoke the lower one first
            self._call(
                routes.REVOKE_USER_PERMISSION,
                "POST",
                json={
                    "username": username,
                    "resource_type": resource_type,
                    "resource_id": resource_id,
                },
            )
        self._call(
            routes.GRANT_USER_PERMISSION,
            "POST",
            json={
                "username": username,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "permission": permission,
            },
        )
        return permission

    def permission(self, username: str, resource_type: str, resource_id: str) -> str | None:
        """The permission ``username`` holds on one resource through a grant of its own."""
        listed = self._call(routes.LIST_USER_PERMISSIONS, "GET", params={"username": username})
        for grant in listed.get("permissions", []):
            if not str(grant.get("role_name", "__user_")).startswith("__user_"):
                continue  # held through a role an admin made, not granted to the user
            if grant.get("resource_type") == resource_type and str(
                grant.get("resource_pattern")
            ) == str(resource_id):
                level = str(grant.get("permission", ""))
                return level if level in LEVELS else None
        return None

    def role(self, name: str, description: str) -> int:
        """The id of the admin-made role ``name``, created when missing."""
        listed = self._call(routes.LIST_ROLES, "GET", params={"workspace": WORKSPACE})
        for role in listed.get("roles", []):
            if role["name"] == name:
                return int(role["id"])
        made = self._call(
            routes.CREATE_ROLE,
            "POST",
            json={"workspace": WORKSPACE, "name": name, "description": description},
        )
        return int(made["role"]["id"])

    def role_grant(self, role_id: int, resource_type: str, pattern: str, permission: str) -> None:
        """``permission`` on one resource for everyone holding the role (kept on delete)."""
        listed = self._call(
            routes.LIST_ROLE_PERMISSIONS, "GET", params={"role_id": str(role_id)}
        ).get("role_permissions", [])
        for grant in listed:
            if grant["resource_type"] == resource_type and grant["resource_pattern"] == pattern:
                if LEVELS.index(grant["permission"]) < LEVELS.index(permission):
                    self._call(
                        routes.UPDATE_ROLE_PERMISSION,
                        "PATCH",
                        json={"role_permission_id": grant["id"], "permission": permission},
                    )
                return
        self._call(
            routes.ADD_ROLE_PERMISSION,
            "POST",
            json={
                "role_id": role_id,
                "resource_type": resource_type,
                "resource_pattern": pattern,
                "permission": permission,
            },
        )

    def assign(self, username: str, role_id: int) -> None:
        """Give ``username`` the role (once)."""
        held = self._call(routes.LIST_USER_ROLES, "GET", params={"username": username})
        if any(int(r["id"]) == role_id for r in held.get("roles", [])):
            return
        self._call(routes.ASSIGN_ROLE, "POST", json={"username": username, "role_id": role_id})

    def experiment_id(self, name: str) -> str:
        """The id of the experiment ``name``, created (owned by the admin) when missing."""
        try:
            found = self._call(
                "/api/2.0/mlflow/experiments/get-by-name", "GET", params={"experiment_name": name}
            )
            return str(found["experiment"]["experiment_id"])
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        made = self._call("/api/2.0/mlflow/experiments/create", "POST", json={"name": name})
        return str(made["experiment_id"])

    def ensure_model(self, name: str, description: str) -> bool:
        """Create the registered model ``name`` as the admin (so nobody else owns it); True if made."""
        if self.model_exists(name):
            return False
        try:
            self._call(
                "/api/2.0/mlflow/registered-models/create",
                "POST",
                json={"name": name, "description": description},
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return False
        return True

    def model_exists(self, name: str) -> bool:
        """True when the registered model ``name`` exists."""
        try:
            self._call("/api/2.0/mlflow/registered-models/get", "GET", params={"name": name})
            return True
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return False
