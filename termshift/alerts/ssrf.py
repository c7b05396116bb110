"""The address rules moved to `termshift.ssrf` (the fetchers use them too); kept importable here."""

from termshift.ssrf import *  # noqa: F403
from termshift.ssrf import (  # noqa: F401 - the names callers use
    METADATA_ADDRESSES,
    Target,
    UnsafeTargetError,
    check_address,
    check_host,
    check_target,
    embedded_ipv4,
    parse_allow_list,
    refusal_reason,
    resolve,
    split_url,
)
