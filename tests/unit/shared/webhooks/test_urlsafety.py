"""Which webhook addresses are refused (private, loopback, metadata, non-unicast), on any spelling."""

from __future__ import annotations

import ipaddress

import pytest

from shared.webhooks.urlsafety import UnsafeURL, address_problem, check_url
from tests.unit.shared.webhooks.fakes import LOOPBACK, fake_resolver


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_address_rules(ip: str, problem: str | None) -> None:
    found = address_problem(ipaddress.ip_address(ip))
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_allowed_networks_open_loopback_but_never_metadata() -> None:
    assert address_problem(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
    assert address_problem(ipaddress.ip_address("127.0.0.2"), LOOPBACK) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), LOOPBACK) is not None
    everything = [ipaddress.ip_network("0.0.0.0/0")]
    assert "metadata" in (address_problem(ipaddress.ip_address("169.254.169.254"), everything) or "")


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://example.com/x", "http(s)"),
        ("file:///etc/passwd", "http(s)"),
        ("http:///nohost", "host"),
        ("http://example.com:99999/", "valid URL"),
        ("http://hooks.internal.test/x", "10.20.30.40, a private address"),
        ("https://mixed.test/x", "a loopback address"),
        ("http://nowhere.test/x", "does not resolve"),
    ],
)
def test_check_url_refuses(url: str, rule: str) -> None:
    resolver = fake_resolver({"hooks.internal.test": ["10.20.30.40"], "mixed.test": ["1.1.1.1", "::1"]})
    with pytest.raises(UnsafeURL) as exc:
        check_url(url, (), resolver)
    assert rule in exc.value.rule


def test_check_url_accepts_public_hosts() -> None:
    check_url(
        "https://hooks.example.test/in?x=1", (), fake_resolver({"hooks.example.test": ["93.184.215.14"]})
    )


@pytest.mark.parametrize(
    "address", ["64:ff9b:1::7f00:1", "::7f00:1", "::ffff:0:7f00:1", "fec0::1", "fc00::1", "ff02::1"]
)
def test_embedded_and_non_unicast_ipv6_forms_are_refused(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "url", ["https://example.com/é", "https://example.com/a b", "https://example.com/\x00"]
)
def test_urls_needing_encoding_are_refused_at_submission(url: str) -> None:
    with pytest.raises(UnsafeURL, match="percent-encode"):
        check_url(url)
