"""Optimistic locking in the back-office: the case page sends the version it showed, the
API takes ``version`` or ``If-Match``; a stale one changes nothing and says so."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from payrecon.cases.service import CaseService
from tests.unit.web.conftest import Login, TestClient, case_id, csrf_of


def _bearer(client: TestClient) -> dict[str, str]:
    token = csrf_of(client.get("/").text)
    issued = client.post("/api/tokens", json={"label": "robot"}, headers={"X-CSRF-Token": token})
    return {"Authorization": f"Bearer {issued.json()['token']}"}


def test_a_stale_case_page_gets_a_changed_meanwhile_message(
    login: Login, service: CaseService
) -> None:
    case = case_id(service, "MISSING_IN_LEDGER")
    alice = login("alice")
    page = alice.get(f"/cases/{case}").text
    shown = re.search(r'name="version" value="(\d+)"', page)
    assert shown and int(shown.group(1)) == service.get(case)["version"]
    # Meanwhile an approver gives the case to carol.
    service.assign(case, service.actor("bob"), "carol")
    answer = alice.post(
        f"/cases/{case}/assign",
        data={"csrf_token": csrf_of(page), "assignee": "alice", "version": shown.group(1)},
    )
    assert answer.status_code == 303
    message = parse_qs(urlsplit(answer.headers["location"]).query)["conflict"][0]
    assert f"case {case} changed meanwhile" in message and "reload" in message
    fresh = alice.get(answer.headers["location"]).text
    assert 'data-testid="conflict"' in fresh and "changed meanwhile" in fresh
    detail = service.get(case)
    assert detail["assignee"] == "carol"
    assert [e["event"] for e in detail["audit"]].count("assign") == 1
    # The fresh page carries the new version: the same click now goes through (an
    # approver's page; alice as operator may not take carol's case).
    bob = login("bob")
    again = bob.get(f"/cases/{case}").text
    version = re.search(r'name="version" value="(\d+)"', again)
    assert version and int(version.group(1)) == detail["version"]
    done = bob.post(
        f"/cases/{case}/assign",
        data={"csrf_token": csrf_of(again), "assignee": "bob", "version": version.group(1)},
    )
    assert "done" in parse_qs(urlsplit(done.headers["location"]).query)


def test_the_api_takes_a_version_in_the_body_or_if_match(
    login: Login, anonymous: TestClient, service: CaseService
) -> None:
    alice = _bearer(login("alice"))
    case = case_id(service, "MISSING_IN_LEDGER")
    base = f"/api/cases/{case}"
    got = anonymous.get(base, headers=alice)
    version = got.json()["version"]
    assert got.headers["etag"] == f'"{version}"'

    assigned = anonymous.post(
        f"{base}/assign", json={"assignee": "alice"}, headers=alice | {"If-Match": f'"{version}"'}
    )
    assert assigned.status_code == 200 and assigned.json()["case"]["version"] == version + 1

    stale = anonymous.post(f"{base}/start", json={"version": version}, headers=alice)
    assert stale.status_code == 409 and stale.json()["error"] == "ConflictError"
    assert (
        f"you saw version {version}, it is now at version {version + 1}" in stale.json()["detail"]
    )
    stale_header = anonymous.post(
        f"{base}/comments", json={"body": "x"}, headers=alice | {"If-Match": f'W/"{version}"'}
    )
    assert stale_header.status_code == 409

    disagree = anonymous.post(
        f"{base}/start", json={"version": version + 1}, headers=alice | {"If-Match": '"1"'}
    )
    assert disagree.status_code == 400 and "disagree" in disagree.json()["detail"]
    garbage = anonymous.post(f"{base}/start", headers=alice | {"If-Match": "*"})
    assert garbage.status_code == 400

    started = anonymous.post(f"{base}/start", json={"version": version + 1}, headers=alice)
    assert started.status_code == 200 and started.json()["case"]["state"] == "IN_PROGRESS"
    plain = anonymous.post(
        f"{base}/comments", json={"body": "no version: not checked"}, headers=alice
    )
    assert plain.status_code == 200
    events = [e["event"] for e in anonymous.get(base, headers=alice).json()["audit"]]
    assert events == ["created", "assign", "start", "comment"]
