"""Drives Custos through a client generated from its OpenAPI document by openapi-python-client:
creates an org with its first owner, a member (made by that owner) and a record, lists and reads it, then fetches and checks the audit
inclusion proof of the record's creation. Any step that does not answer as documented fails.

    PYTHONPATH=DIR_WITH_custos_client client_smoke.py BASE_URL ADMIN_TOKEN
"""

import sys

from custos_client import AuthenticatedClient
from custos_client.api.audit import audit_events, inclusion_proof
from custos_client.api.default import create_org, create_record, get_record, list_records
from custos_client.api.members import add_member
from custos_client.models import (
    AuditPage,
    CreatedMember,
    CreatedOrg,
    CreatedRecord,
    InclusionProofDoc,
    NewMember,
    NewOrg,
    NewOwner,
    NewRecord,
    RecordPage,
    RecordView,
)


def expect(value, kind, what):
    if not isinstance(value, kind):
        raise SystemExit(f"client-smoke: {what}: expected {kind.__name__}, got {value!r}")
    return value


def main():
    base, token = sys.argv[1], sys.argv[2]
    admin = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    org = expect(
        create_org.sync(client=admin, body=NewOrg(name="Client smoke", owner=NewOwner(name="Olive"))),
        CreatedOrg,
        "create_org",
    )
    if not org.owner or not org.owner.api_key.startswith("cus_"):
        raise SystemExit(f"client-smoke: create_org: no owner key in {org!r}")
    owner = AuthenticatedClient(base_url=base, token=org.owner.api_key, raise_on_unexpected_status=True)
    member = expect(
        add_member.sync(org.id, client=owner, body=NewMember(name="app", roles=["owner"])),
        CreatedMember,
        "add_member",
    )
    app = AuthenticatedClient(base_url=base, token=member.api_key, raise_on_unexpected_status=True)
    record = expect(
        create_record.sync(
            org.id,
            client=app,
            body=NewRecord.from_dict({"category": "messages", "subject": "alice", "content": {"text": "hello"}}),
        ),
        CreatedRecord,
        "create_record",
    )
    page = expect(list_records.sync(org.id, client=app, limit=10), RecordPage, "list_records")
    if [item.id for item in page.items] != [record.id]:
        raise SystemExit(f"client-smoke: list_records: {page!r}")
    view = expect(get_record.sync(org.id, record.id, client=app), RecordView, "get_record")
    if view.id != record.id or view.content != {"text": "hello"}:
        raise SystemExit(f"client-smoke: get_record: {view!r}")
    events = expect(
        audit_events.sync(client=app, action="record.create", target=f"record:{record.id}"),
        AuditPage,
        "audit_events",
    )
    if len(events.items) != 1:
        raise SystemExit(f"client-smoke: audit_events: {events!r}")
    index = events.items[0].index
    proof = expect(inclusion_proof.sync(index, client=app), InclusionProofDoc, "inclusion_proof")
    if proof.index != index or proof.tree_size <= index:
        raise SystemExit(f"client-smoke: inclusion_proof: {proof!r}")
    print(f"client-smoke: org with its owner, member, record {record.id}, listing, read and inclusion proof of entry {index}: ok")


if __name__ == "__main__":
    main()
