"""Domain auto-join (issue #19, teams item 2): an organisation claims an email domain and proves
it with a DNS TXT record (a test double stands for DNS: there is no network here), or an
administrator sets it; someone who then verifies an address on it joins at once (policy "join")
or is offered to, and may accept or decline (policy "offer"). Public mail domains cannot be
claimed; one domain belongs to one organisation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.keys import DB
from multinotes.organisations.domains import TXT_RESOLVER
from multinotes.sharing.models import Notification
from multinotes.testing import ApiClient, app_client
from tests.conftest import BUILTIN, worker_for
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, token_in

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


class FakeDns:
    """TXT records by domain, as the organisation's verify button would find them."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def txt(self, domain: str) -> list[str]:
        self.asked.append(domain)
        return list(self.records.get(domain, []))


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns()


@pytest.fixture
async def api(settings: Any, plugins: Any, dns: FakeDns) -> AsyncIterator[ApiClient]:
    app = create_app(settings, plugins=None if plugins == BUILTIN else plugins)
    app[TXT_RESOLVER] = dns
    async with app_client(app) as client, worker_for(app):
        yield client


@pytest.fixture
async def owner(api: ApiClient) -> ApiClient:
    await api.register_admin("olive@acmecorp.com")
    await api.mark_verified()
    return api


async def create(client: ApiClient, name: str = "Acme") -> dict[str, Any]:
    response = await client.post("/api/orgs", {"name": name})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def claim(client: ApiClient, org_id: str, domain: str) -> dict[str, Any]:
    response = await client.post(f"/api/orgs/{org_id}/domains", {"domain": domain})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def verified_domain(owner: ApiClient, dns: FakeDns, org_id: str, domain: str) -> None:
    claimed = await claim(owner, org_id, domain)
    dns.records[domain] = ["v=spf1 -all", claimed["txt_record"]]
    verified = await owner.post(f"/api/orgs/{org_id}/domains/{claimed['id']}/verify")
    assert verified.status == 200, await verified.text()


async def signs_up(make_client: Any, mailbox: Mailbox, email: str) -> ApiClient:
    """A newcomer registers and opens the verification link they were mailed."""
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    token = token_in(await mailbox.wait_for(email, subject="Verify"), "/verify")
    response = await client.post("/api/auth/verify", {"token": token})
    assert response.status == 200, await response.text()
    return client


async def my_organisations(client: ApiClient) -> list[str]:
    return [o["name"] for o in (await client.get_json("/api/orgs"))["organisations"]]


async def test_a_colleague_on_a_claimed_domain_signs_up_and_lands_in_it(
    owner: ApiClient, dns: FakeDns, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    claimed = await claim(owner, org["id"], "AcmeCorp.com")
    assert claimed["domain"] == "acmecorp.com" and claimed["status"] == "pending"
    assert claimed["txt_record"].startswith("multinotes-verification=")

    # No record yet: nothing is verified, and the answer says what to add.
    early = await owner.post(f"/api/orgs/{org['id']}/domains/{claimed['id']}/verify")
    assert early.status == 409
    assert (await early.json())["error"]["code"] == "dns_record_missing"
    dns.records["acmecorp.com"] = ["google-site-verification=x", claimed["txt_record"]]
    verified = await owner.post(f"/api/orgs/{org['id']}/domains/{claimed['id']}/verify")
    assert verified.status == 200
    assert (await verified.json())["status"] == "verified"
    assert dns.asked == ["acmecorp.com", "acmecorp.com"]
    policy = await owner.request(
        "PUT", f"/api/orgs/{org['id']}/join-policy", json={"join_policy": "join"}
    )
    assert policy.status == 200 and (await policy.json())["join_policy"] == "join"

    colleague = await signs_up(make_client, mailbox, "cole@acmecorp.com")
    assert await my_organisations(colleague) == ["Acme"]
    members = await owner.get_json(f"/api/orgs/{org['id']}/members")
    assert {m["email"]: m["role"] for m in members["members"]} == {
        "olive@acmecorp.com": "owner",
        "cole@acmecorp.com": "member",
    }
    async with owner.app[DB].read() as session:
        notice = await session.scalar(
            select(Notification).where(Notification.user_id == colleague.user["id"])  # type: ignore[index]
        )
    assert notice is not None and notice.title == "You joined Acme"
    # Someone on another domain joins nothing.
    stranger = await signs_up(make_client, mailbox, "sam@elsewhere.org")
    assert await my_organisations(stranger) == []


async def test_with_the_offer_policy_a_newcomer_accepts_or_declines_once(
    owner: ApiClient, dns: FakeDns, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    await verified_domain(owner, dns, org["id"], "acmecorp.com")  # the default policy: offer
    dana = await signs_up(make_client, mailbox, "dana@acmecorp.com")
    assert await my_organisations(dana) == []
    offers = (await dana.get_json("/api/me/org-offers"))["offers"]
    assert [(o["organisation_name"], o["domain"]) for o in offers] == [("Acme", "acmecorp.com")]
    page = await dana.get("/organisations")
    assert "Offers to join" in await page.text()

    accepted = await dana.post(f"/api/me/org-offers/{offers[0]['id']}/accept")
    assert accepted.status == 200, await accepted.text()
    assert (await accepted.json())["role"] == "member"
    assert await my_organisations(dana) == ["Acme"]
    assert (await dana.get_json("/api/me/org-offers"))["offers"] == []
    again = await dana.post(f"/api/me/org-offers/{offers[0]['id']}/accept")
    assert again.status == 404

    eli = await signs_up(make_client, mailbox, "eli@acmecorp.com")
    offer = (await eli.get_json("/api/me/org-offers"))["offers"][0]
    # Someone else's offer is not theirs to take.
    assert (await dana.post(f"/api/me/org-offers/{offer['id']}/decline")).status == 404
    declined = await eli.client.post(
        f"/organisations/offers/{offer['id']}/decline",
        data={"csrf_token": eli.csrf or ""},
        allow_redirects=False,
    )
    assert declined.status == 303
    assert await my_organisations(eli) == []
    assert (await eli.get_json("/api/me/org-offers"))["offers"] == []


async def test_public_mail_domains_and_bad_names_are_refused_naming_the_field(
    owner: ApiClient,
):
    org = await create(owner)
    for domain, code in (
        ("gmail.com", "public_domain"),
        ("@Outlook.com", "public_domain"),
        ("not a domain", "invalid"),
        ("localhost", "invalid"),
        ("10.0.0.1", "invalid"),
    ):
        response = await owner.post(f"/api/orgs/{org['id']}/domains", {"domain": domain})
        assert response.status == 422, domain
        error = (await response.json())["error"]
        assert error["code"] == code and "domain" in error["fields"], (domain, error)
    extra = await owner.post(f"/api/orgs/{org['id']}/domains", {"domain": "a-corp.com", "x": 1})
    assert extra.status == 422
    await claim(owner, org["id"], "acmecorp.com")
    twice = await owner.post(f"/api/orgs/{org['id']}/domains", {"domain": "acmecorp.com"})
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "already_claimed"
    assert [
        d["domain"] for d in (await owner.get_json(f"/api/orgs/{org['id']}/domains"))["domains"]
    ] == ["acmecorp.com"]


async def test_a_domain_belongs_to_one_organisation_and_an_administrator_can_set_it(
    owner: ApiClient, dns: FakeDns, make_client: Any, mailbox: Mailbox
):
    acme = await create(owner, "Acme")
    await verified_domain(owner, dns, acme["id"], "acmecorp.com")
    rival_owner = await signs_up(make_client, mailbox, "rita@rivalcorp.com")
    rival = await create(rival_owner, "Rival")
    taken = await rival_owner.post(f"/api/orgs/{rival['id']}/domains", {"domain": "acmecorp.com"})
    assert taken.status == 409 and (await taken.json())["error"]["code"] == "domain_taken"

    # Only an instance administrator sets a domain without DNS.
    refused = await rival_owner.post(
        f"/api/admin/orgs/{rival['id']}/domains", {"domain": "rivalcorp.com"}
    )
    assert refused.status == 403
    set_by_admin = await owner.post(
        f"/api/admin/orgs/{rival['id']}/domains", {"domain": "rivalcorp.com"}
    )
    assert set_by_admin.status == 201, await set_by_admin.text()
    assert (await set_by_admin.json())["verified_by"] == "admin"
    assert (
        await owner.post("/api/admin/orgs/nope/domains", {"domain": "x-corp.com"})
    ).status == 404
    listed = await rival_owner.get_json(f"/api/orgs/{rival['id']}/domains")
    assert [(d["domain"], d["status"]) for d in listed["domains"]] == [
        ("rivalcorp.com", "verified")
    ]
    entries = await owner.get_json("/api/admin/audit?action=organisation.domain_set")
    assert [e["details"]["domain"] for e in entries["entries"]] == ["rivalcorp.com"]

    # A plain member neither sees nor changes the domains; an outsider gets 404.
    ray = await signs_up(make_client, mailbox, "ray@rivalcorp.com")  # offered (policy: offer)
    offer = (await ray.get_json("/api/me/org-offers"))["offers"][0]
    assert (await ray.post(f"/api/me/org-offers/{offer['id']}/accept")).status == 200
    assert (await ray.get(f"/api/orgs/{rival['id']}/domains")).status == 403
    assert (
        await ray.post(f"/api/orgs/{rival['id']}/domains", {"domain": "r-corp.com"})
    ).status == 403
    assert (await ray.get(f"/api/orgs/{acme['id']}/domains")).status == 404

    # Removing a domain keeps the members but brings nobody else in.
    domain_id = listed["domains"][0]["id"]
    removed = await rival_owner.delete(f"/api/orgs/{rival['id']}/domains/{domain_id}")
    assert removed.status == 204
    late = await signs_up(make_client, mailbox, "lou@rivalcorp.com")
    assert (await late.get_json("/api/me/org-offers"))["offers"] == []
    assert len((await rival_owner.get_json(f"/api/orgs/{rival['id']}/members"))["members"]) == 2


async def test_the_organisation_page_claims_and_verifies_a_domain(owner: ApiClient, dns: FakeDns):
    org = await create(owner)
    base = f"/organisations/{org['id']}"
    public = await owner.client.post(
        f"{base}/domains", data={"csrf_token": owner.csrf or "", "domain": "gmail.com"}
    )
    assert public.status == 422
    assert "public mail provider" in await public.text()
    claimed = await owner.client.post(
        f"{base}/domains",
        data={"csrf_token": owner.csrf or "", "domain": "acmecorp.com"},
        allow_redirects=False,
    )
    assert claimed.status == 303
    domain = (await owner.get_json(f"/api/orgs/{org['id']}/domains"))["domains"][0]
    page = await (await owner.get(base)).text()
    assert domain["txt_record"] in page and "waiting for its DNS record" in page
    dns.records["acmecorp.com"] = [domain["txt_record"]]
    verified = await owner.client.post(
        f"{base}/domains/{domain['id']}/verify",
        data={"csrf_token": owner.csrf or ""},
        allow_redirects=False,
    )
    assert verified.status == 303
    policy = await owner.client.post(
        f"{base}/join-policy",
        data={"csrf_token": owner.csrf or "", "join_policy": "join"},
        allow_redirects=False,
    )
    assert policy.status == 303
    listed = await owner.get_json(f"/api/orgs/{org['id']}/domains")
    assert listed["join_policy"] == "join" and listed["domains"][0]["status"] == "verified"
    actions = await owner.get_json(f"/api/admin/audit?target_id={org['id']}")
    assert {
        "organisation.domain_claimed",
        "organisation.domain_verified",
        "organisation.join_policy_set",
    } <= {e["action"] for e in actions["entries"]}
