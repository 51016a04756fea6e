"""CI's httpx2 job: every Python process of the run (pytest, its xdist workers, the worker processes
the tests start) resolves ``import httpx`` to httpx2, as an application that moved to httpx2 does
(``httpx2.alias_httpx()`` before anything imports httpx). The library itself never aliases."""

import httpx2

httpx2.alias_httpx()
