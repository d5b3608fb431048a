"""An API response kept for 24 hours (the Python devstash's API example). The host makes the
request; the guest has no sockets.

    devstash run --allow-net=api.github.com examples/python/api.py \
        https://api.github.com/repos/python/cpython
"""

import sys

import devstash.http

url = sys.argv[1] if len(sys.argv) > 1 else "https://api.github.com/repos/python/cpython"
response = devstash.http.get(
    url,
    headers={"Accept": "application/json", "User-Agent": "devstash-example"},
    cache="24h",
)
response.raise_for_status()
repo = response.json()
print(f"{repo['full_name']}: {repo['stargazers_count']} stars; {repo.get('description')}")
