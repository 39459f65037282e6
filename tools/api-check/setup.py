"""Creates an org with its first owner over HTTP; prints the org id and the owner's API key.

    setup.py BASE_URL ADMIN_TOKEN
"""

import json
import sys
import urllib.request


def post(base, token, path, body):
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def main():
    base, token = sys.argv[1], sys.argv[2]
    org = post(base, token, "/v1/orgs", {"name": "Fuzz", "owner": {"name": "fuzzer"}})
    print(org["id"], org["owner"]["api_key"])


if __name__ == "__main__":
    main()
