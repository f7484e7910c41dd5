"""The configured source of one channel's merchant -> a ready :class:`Fetcher`.

Secrets and keys are read here, when a fetch starts, so a missing key file is a
:class:`~payrecon.errors.ConfigError` naming the setting. Optional packages are checked
with an install hint before the fetcher that needs them is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from payrecon.config import (
    AlipaySource,
    FetchSettings,
    FetchSource,
    HttpSource,
    LocalSource,
    SftpSource,
    WechatV2Source,
    WechatV3Source,
)
from payrecon.errors import ConfigError, require
from payrecon.fetch.base import Fetcher, read_secret
from payrecon.fetch.transfer import new_client

ClientFactory = Callable[[], httpx.Client]


@contextmanager
def open_fetcher(
    channel: str, merchant: str, source: FetchSource, settings: FetchSettings, staging: Path
) -> Iterator[Fetcher]:
    """The fetcher for ``source``; its HTTP client is closed when the block ends."""
    timeout = source.timeout_seconds or settings.timeout_seconds
    with ExitStack() as stack:

        def client() -> httpx.Client:
            return stack.enter_context(new_client(timeout))

        where = f"fetch.channels.{channel}.{merchant}"
        yield _build(where, merchant, source, staging, client, timeout)


def _build(
    where: str,
    merchant: str,
    source: FetchSource,
    staging: Path,
    client: ClientFactory,
    timeout: float,
) -> Fetcher:
    if isinstance(source, LocalSource):
        from payrecon.fetch.local import LocalFetcher

        return LocalFetcher(source.folder, source.pattern, staging)
    if isinstance(source, HttpSource):
        from payrecon.fetch.url import UrlFetcher

        headers = {**source.headers, **_env_headers(where, source.headers_env)}
        return UrlFetcher(source.url, source.allowed_hosts, client(), staging, headers=headers)
    if isinstance(source, SftpSource):
        return _sftp(where, source, staging, timeout)
    if isinstance(source, WechatV2Source):
        return _wechat_v2(where, merchant, source, staging, client)
    require("cryptography", "fetch")
    if isinstance(source, WechatV3Source):
        return _wechat_v3(where, merchant, source, staging, client)
    return _alipay(where, source, staging, client)


def _wechat_v3(
    where: str, merchant: str, source: WechatV3Source, staging: Path, client: ClientFactory
) -> Fetcher:
    from payrecon.fetch import keys
    from payrecon.fetch.wechat_v3 import WechatV3Credentials, WechatV3Fetcher

    what = f"{where}.private_key"
    private_key = read_secret(source.private_key_file, source.private_key_env, what)
    platform_key = None
    if source.platform_public_key_file is not None:
        what = f"{where}.platform_public_key_file"
        pem = read_secret(source.platform_public_key_file, None, what)
        platform_key = keys.load_public_key(pem, what)
    credentials = WechatV3Credentials(
        mchid=source.mchid or merchant,
        serial_no=source.serial_no,
        private_key=keys.load_private_key(private_key, f"{where}.private_key"),
        platform_key=platform_key,
    )
    return WechatV3Fetcher(
        credentials,
        client(),
        staging,
        bill_types=source.bill_types,
        fundflow_accounts=source.fundflow_accounts,
        base_url=source.base_url,
    )


def _wechat_v2(
    where: str, merchant: str, source: WechatV2Source, staging: Path, client: ClientFactory
) -> Fetcher:
    from payrecon.fetch.wechat_v2 import WechatV2Credentials, WechatV2Fetcher

    api_key = read_secret(source.api_key_file, source.api_key_env, f"{where}.api_key")
    credentials = WechatV2Credentials(
        appid=source.appid,
        mch_id=source.mch_id or merchant,
        api_key=api_key.decode(),
        sign_type=source.sign_type,
    )
    return WechatV2Fetcher(
        credentials,
        client(),
        staging,
        bill_types=source.bill_types,
        gzip=source.gzip,
        base_url=source.base_url,
    )


def _alipay(where: str, source: AlipaySource, staging: Path, client: ClientFactory) -> Fetcher:
    from payrecon.fetch import keys
    from payrecon.fetch.alipay import AlipayCredentials, AlipayFetcher

    private = read_secret(source.private_key_file, source.private_key_env, where)
    public = read_secret(source.alipay_public_key_file, source.alipay_public_key_env, where)
    credentials = AlipayCredentials(
        app_id=source.app_id,
        private_key=keys.load_private_key(private, f"{where}.private_key"),
        alipay_public_key=keys.load_public_key(public, f"{where}.alipay_public_key"),
    )
    return AlipayFetcher(
        credentials, client(), staging, bill_types=source.bill_types, gateway=source.gateway
    )


def _sftp(where: str, source: SftpSource, staging: Path, timeout: float) -> Fetcher:
    require("asyncssh", "fetch")
    from payrecon.fetch.sftp import SftpFetcher, SftpServer

    client_key = None
    if source.client_key_file is not None:
        client_key = read_secret(source.client_key_file, None, f"{where}.client_key_file")
    password = None
    if source.password_env is not None:
        password = read_secret(None, source.password_env, f"{where}.password_env").decode()
    server = SftpServer(
        host=source.host,
        username=source.username,
        port=source.port,
        client_key=client_key,
        password=password,
        known_hosts=source.known_hosts,
        check_host_key=source.check_host_key,
        timeout_s=timeout,
    )
    return SftpFetcher(server, source.path, staging)


def _env_headers(where: str, names: dict[str, str]) -> dict[str, str]:
    headers = {}
    for header, variable in names.items():
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(
                f"{where}.headers_env: the environment variable {variable} is not set"
            )
        headers[header] = value
    return headers
