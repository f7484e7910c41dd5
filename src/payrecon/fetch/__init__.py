"""Getting bill files: channel download APIs, SFTP, HTTP(S) and local folders.

    base        the Fetcher interface, FetchedFile (+ provenance), the hashing spool,
                secrets from files or the environment
    retry       fetch_with_retry: back off while a bill is not published, up to a deadline
    store       the content-addressed store under <home>/bills (SQLite index, versions)
    keys        RSA keys, SHA256withRSA signatures (cryptography)
    transfer    httpx requests and downloads, errors mapped onto the error tree
    wechat      what WeChat's v2 and v3 answers mean (reuses payrecon.bills.wechat)
    wechat_v3   WeChat Pay API v3 tradebill / fundflowbill (signed, SHA1-checked)
    wechat_v2   WeChat Pay API v2 downloadbill (MD5 / HMAC-SHA256 signed XML)
    alipay      Alipay bill.downloadurl.query (RSA2 both ways), then the zip
    sftp        files on an SFTP server (asyncssh)
    url         a file at an HTTP(S) URL on allow-listed hosts
    local       files dropped into a folder
    factory     the configured source of a channel's merchant -> a Fetcher
    run         fetch a day's bills into the store (``payrecon fetch``)

Optional clients (cryptography, asyncssh) are imported only by the fetchers that need
them, when such a source is configured; see docs/fetch.md.
"""
