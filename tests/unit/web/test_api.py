"""The JSON API: bearer tokens, the workflow through it, errors mapped in one handler."""

from __future__ import annotations

import pytest

from payrecon.cases.service import CaseService
from tests.unit.web.conftest import Login, TestClient, case_id, csrf_of


def _bearer(client: TestClient, user: str | None = None) -> dict[str, str]:
    token = csrf_of(client.get("/").text)
    body = {"label": "robot"} | ({"user": user} if user else {})
    issued = client.post("/api/tokens", json=body, headers={"X-CSRF-Token": token})
    assert issued.status_code == 201
    return {"Authorization": f"Bearer {issued.json()['token']}"}


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_propose_then_approve_by_a_second_person_over_the_api(
    request: pytest.FixtureRequest,
    login: Login,
    anonymous: TestClient,
    service: CaseService,
    store_url: str,
) -> None:
    if "postgresql" in store_url:
        request.applymarker(pytest.mark.integration)
    alice = _bearer(login("alice"))
    bob = _bearer(login("bob"))
    missing = case_id(service, "MISSING_IN_LEDGER")
    base = f"/api/cases/{missing}"
    assert (
        anonymous.post(f"{base}/assign", json={"assignee": "alice"}, headers=alice).status_code
        == 200
    )
    assert anonymous.post(f"{base}/start", headers=alice).status_code == 200
    proposed = anonymous.post(
        f"{base}/actions", json={"kind": "supplement_order", "reason": "补单"}, headers=alice
    )
    assert proposed.status_code == 200
    assert proposed.json()["case"]["state"] == "PENDING_APPROVAL"
    own = anonymous.post(f"{base}/actions/approve", json={}, headers=alice)
    assert own.status_code == 403 and own.json()["error"] == "PermissionDeniedError"
    approved = anonymous.post(f"{base}/actions/approve", json={"note": "ok"}, headers=bob)
    assert approved.status_code == 200
    action = approved.json()["case"]["actions"][-1]
    assert (action["state"], action["reviewed_by"], action["amount"]) == ("APPROVED", "bob", 95_000)
    events = [e["event"] for e in anonymous.get(base, headers=bob).json()["audit"]]
    assert events[-3:] == ["start", "propose", "approve"]


def test_a_revoked_or_unknown_token_is_refused(login: Login, anonymous: TestClient) -> None:
    victor = login("victor")
    headers = _bearer(victor)
    assert anonymous.get("/api/cases", headers=headers).status_code == 200
    token_id = victor.get("/api/tokens").json()[0]["id"]
    csrf = csrf_of(victor.get("/").text)
    assert (
        victor.delete(f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf}).status_code == 204
    )
    assert anonymous.get("/api/cases", headers=headers).status_code == 401
    assert anonymous.get("/api/cases", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_only_admins_issue_tokens_for_others(login: Login) -> None:
    alice = login("alice")
    csrf = csrf_of(alice.get("/").text)
    refused = alice.post("/api/tokens", json={"user": "bob"}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert _bearer(login("root"), user="bob")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("get", "/api/cases/999999", None, 404, "NotFoundError"),
        ("post", "/api/cases/1/start", None, 409, "TransitionError"),
        ("post", "/api/cases/1/actions/approve", {}, 409, "TransitionError"),
        ("post", "/api/cases/1/reopen", {"reason": "again"}, 403, "PermissionDeniedError"),
        ("post", "/api/users", {"name": "alice", "role": "viewer"}, 422, "ConfigError"),
        ("get", "/api/runs/nope", None, 404, "NotFoundError"),
    ],
)
def test_errors_map_to_statuses_in_one_handler(
    login: Login, method: str, path: str, body: object, status: int, error: str
) -> None:
    who = "root" if path == "/api/users" else "alice"
    client = login(who)
    headers = {"X-CSRF-Token": csrf_of(client.get("/").text)}
    answer = client.request(method, path, json=body, headers=headers)
    assert (answer.status_code, answer.json()["error"]) == (status, error)


def test_the_queue_filters_sorts_and_pages(login: Login) -> None:
    victor = login("victor")
    everything = victor.get("/api/cases", params={"per_page": 2}).json()
    assert everything["total"] == 5 and len(everything["cases"]) == 2 and not everything["more"]
    second = victor.get("/api/cases", params={"per_page": 2, "page": 2}).json()["cases"]
    assert {c["id"] for c in everything["cases"]}.isdisjoint({c["id"] for c in second})
    by_stake = victor.get("/api/cases", params={"sort": "stake", "desc": "true"}).json()["cases"]
    stakes = [c["stake"] for c in by_stake]
    assert stakes == sorted(stakes, reverse=True)
    only = victor.get("/api/cases", params={"outcome": "AMOUNT_MISMATCH"}).json()
    assert [c["outcome"] for c in only["cases"]] == ["AMOUNT_MISMATCH"]
    big = victor.get("/api/cases", params={"min_stake": 50_000, "channel": "wechat"}).json()
    assert all(c["stake"] >= 50_000 for c in big["cases"]) and big["total"] >= 1
    assert victor.get("/api/cases", params={"sort": "nonsense"}).status_code == 422


def test_users_can_be_added_with_a_password_by_an_admin(
    login: Login, anonymous: TestClient
) -> None:
    root = login("root")
    csrf = {"X-CSRF-Token": csrf_of(root.get("/").text)}
    body = {"name": "eve", "role": "operator", "password": "eve-password"}
    assert root.post("/api/users", json=body, headers=csrf).status_code == 201
    assert "eve" in [u["name"] for u in root.get("/api/users").json()]
    from tests.unit.web.conftest import log_in

    assert log_in(anonymous, "eve", "eve-password").status_code == 303
