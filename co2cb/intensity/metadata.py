"""Ask a cloud instance-metadata service which region the machine is in (opt-in).

Nothing in co2cb calls this unless asked (``resolve_region(metadata=True)``):
by default co2cb opens no network connection. The three providers answer on the
same link-local address; the endpoint base is a parameter so that tests can use
a local server.
"""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

DEFAULT_ENDPOINT = "http://169.254.169.254"
_REGION = re.compile(r"^[a-z]{2}[a-z0-9-]{1,38}$")
_MAX_BYTES = 4096


def _get(
    opener: urllib.request.OpenerDirector, url: str, headers: dict[str, str], timeout_s: float, method: str = "GET"
) -> str:
    request = urllib.request.Request(url, headers=headers, method=method)
    with opener.open(request, timeout=timeout_s) as response:
        return response.read(_MAX_BYTES).decode("utf-8", "replace").strip()


def _aws(opener: urllib.request.OpenerDirector, base: str, timeout_s: float) -> str:
    """AWS IMDSv2: a session token (PUT), then the region."""
    token = _get(
        opener, f"{base}/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, timeout_s, method="PUT"
    )
    return _get(opener, f"{base}/latest/meta-data/placement/region", {"X-aws-ec2-metadata-token": token}, timeout_s)


def _gcp(opener: urllib.request.OpenerDirector, base: str, timeout_s: float) -> str:
    """GCP: the instance's zone ``projects/N/zones/europe-west9-a`` -> ``europe-west9``."""
    zone = _get(opener, f"{base}/computeMetadata/v1/instance/zone", {"Metadata-Flavor": "Google"}, timeout_s)
    zone = zone.rsplit("/", 1)[-1]
    return zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else ""


def _azure(opener: urllib.request.OpenerDirector, base: str, timeout_s: float) -> str:
    """Azure IMDS: the compute location (``francecentral``)."""
    url = f"{base}/metadata/instance/compute/location?api-version=2021-02-01&format=text"
    return _get(opener, url, {"Metadata": "true"}, timeout_s).replace(" ", "")


_PROVIDERS: dict[str, Callable[[urllib.request.OpenerDirector, str, float], str]] = {
    "aws": _aws,
    "gcp": _gcp,
    "azure": _azure,
}


def query_cloud_metadata(
    endpoint: str = DEFAULT_ENDPOINT,
    timeout_s: float = 1.0,
    providers: Sequence[str] = ("aws", "gcp", "azure"),
) -> str | None:
    """The cloud region of this machine from its metadata service, or None.

    Tries each provider's API in turn at ``endpoint``. A provider that answers
    with an HTTP error is skipped; a timeout or refused connection ends the
    query (nothing listens there), so a machine outside any cloud waits at most
    about ``timeout_s``. Proxies from the environment are ignored.

    Args:
        endpoint: Base URL of the metadata service.
        timeout_s: Timeout of each request, in seconds.
        providers: Which of ``"aws"``, ``"gcp"``, ``"azure"`` to try, in order.

    Returns:
        ``"<provider>:<region>"`` (``"aws:eu-west-3"``), or None.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = endpoint.rstrip("/")
    for provider in providers:
        ask = _PROVIDERS.get(provider)
        if ask is None:
            raise ValueError(f"unknown cloud provider {provider!r}; use one of {', '.join(_PROVIDERS)}")
        try:
            region = ask(opener, base, timeout_s).lower()
        except urllib.error.HTTPError:
            continue  # this provider's API is not there; another may be
        except (http.client.HTTPException, ValueError):
            continue  # a garbled answer
        except (urllib.error.URLError, OSError):
            return None  # timeout, refused, unreachable: no metadata service
        if _REGION.match(region):
            return f"{provider}:{region}"
    return None
