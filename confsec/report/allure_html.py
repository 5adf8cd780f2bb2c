"""The one-file Allure HTML report (Allure 3 from npm), made safe to open offline.

Allure 3's `awesome` plugin with `--single-file` inlines everything into one `index.html`, except
an analytics loader (googletagmanager) and its gtag() call, which it embeds in every view
whatever `ALLURE_NO_ANALYTICS` says. `strip_analytics()` removes both, and `remote_urls()` lets
a test (and the run) prove nothing else would be fetched. Allure is optional: when npm's
`allure` is not installed the run says so and writes everything else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_GTM_LOADER = re.compile(r"<script[^>]*googletagmanager[^>]*>\s*</script>\s*", re.I)
_GTAG_CALL = re.compile(r"<script>(?:(?!</script>).)*?gtag\((?:(?!</script>).)*?</script>\s*", re.S)
_URL = re.compile(r"""(?:src|href)\s*=\s*["']?(https?:)?//[^"'\s>]+""", re.I)


def find_allure(root: Path) -> str | None:
    """npm's allure 3: $CONFSEC_ALLURE, then the checkout's .tools/allure, then PATH."""
    env = os.environ.get("CONFSEC_ALLURE")
    if env:
        return env if Path(env).exists() else None
    local = root / ".tools" / "allure" / "node_modules" / ".bin" / "allure"
    if local.exists():
        return str(local)
    found = shutil.which("allure")
    if found and "node_modules" in os.path.realpath(found):  # not Allure 2 (Java)
        return found
    return None


def strip_analytics(html: str) -> str:
    html = _GTM_LOADER.sub("", html)
    return _GTAG_CALL.sub("", html)


def remote_urls(html: str) -> list[str]:
    """src/href attributes that would make the browser fetch from the network."""
    return [m.group(0) for m in _URL.finditer(html)]


def build_allure_html(allure: str, results: Path, out_dir: Path, timeout: float = 120) -> Path:
    """`allure awesome RESULTS --single-file -o OUT`, analytics stripped; returns index.html.

    Raises RuntimeError with Allure's own message when it fails.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    env = dict(os.environ, ALLURE_NO_ANALYTICS="true")
    proc = subprocess.run(
        [allure, "awesome", str(results), "--single-file", "-o", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    index = out_dir / "index.html"
    if proc.returncode != 0 or not index.exists():
        raise RuntimeError((proc.stderr or proc.stdout).strip()[-500:] or "no index.html")
    index.write_text(strip_analytics(index.read_text()))
    return index
