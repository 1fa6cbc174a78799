"""`podnet ui` in a real browser (Debian's chromium, headless, driven by Selenium through
chromium-driver) against a real dual-stack lab running the demo: the topology lists every
pod with its addresses; a pod deleted with the CLI leaves the page within 2 s; the
reachability matrix equals `podnet analyze -o json` and the probe's real connections;
the client → web trace is drawn with the hops `podnet trace` prints, and confirmed.
Screenshots go to artifacts/ui/ (git-ignored; PODNET_ARTIFACTS moves them)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from lablib import Lab
from needs import missing

pytestmark = [pytest.mark.root, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("PODNET_ARTIFACTS") or REPO / "artifacts") / "ui"

# Plain pods (their names are the same in the lab and for `analyze`) and a policy:
# into b only from role=a, on 8080.
MATRIX = """apiVersion: v1
kind: Namespace
metadata: {name: uim}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: uim}
spec:
  podSelector: {matchLabels: {role: b}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {role: a}}}], ports: [{port: 8080, protocol: TCP}]}]
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {n}, namespace: uim, labels: {{role: {n}}}}}
spec:
  containers: [{{name: s, image: podnet/serve, ports: [{{containerPort: 8080}}]}}]
""" for n in "abc")


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 10.0, every: float = 0.05,
             show: Callable[[], Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f"; the page shows {show()!r}" if show else ""))
        time.sleep(every)


@pytest.fixture(scope="module")
def lab(lab_home: Path) -> Iterator[Lab]:
    lab = Lab("webui" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--dual-stack")
        for f in ("00-namespaces.yaml", "10-ippools.yaml", "20-web.yaml", "30-clients.yaml"):
            lab.podnet("apply", "-f", str(DEMO / f))
        (lab_home / "matrix.yaml").write_text(MATRIX)
        lab.podnet("apply", "-f", str(lab_home / "matrix.yaml"))
        lab.wait_pods(3, namespace="shop", app="web")
        lab.wait_pods(3, namespace="uim")
        lab.wait_pods(1, namespace="batch")
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def url(lab: Lab) -> Iterator[str]:
    p = subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "ui", "--name", lab.name, "--port", "0"],
                         env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline() if p.stdout else ""
        m = re.search(r"http://127\.0\.0\.1:\d+/\?key=[\w-]+", line)
        assert m, f"podnet ui printed {line!r}"
        yield m.group(0)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            missing(f"{path} is not installed (Debian's chromium and chromium-driver; `make deps`)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("the selenium package is not installed (pip install -e '.[test]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--lang=en"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()


def shot(d: Any, name: str) -> None:
    d.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def listed(d: Any) -> dict[str, set[str]]:
    """The page's text list of pods: label -> addresses."""
    return d.execute_script("""return Object.fromEntries([...document.querySelectorAll('#pod-list li[data-pod]')]
        .map(li => [li.dataset.pod, li.dataset.ips]))""")


def store_pods(lab: Lab) -> dict[str, str]:
    return {f"{p.namespace}/{p.name}": " ".join(sorted(p.pod_ips)) for p in lab.pods(None) if p.node_name}


def test_topology_lists_every_pod_with_its_addresses(lab, url, browser):
    from selenium.webdriver.common.by import By
    browser.get(url)
    want = store_pods(lab)
    assert all(want.values()) and len(want) >= 10
    got = wait_for("the page to list every pod", lambda: (lambda g: g if {k: " ".join(sorted(v.split()))
                   for k, v in g.items()} == want else None)(listed(browser)))
    assert set(got) == set(want)
    # the drawing has one focusable element per pod whose text alternative holds its addresses
    drawn = browser.execute_script("""return [...document.querySelectorAll('#topo-drawing svg g.pod')]
        .map(g => [g.dataset.pod, g.getAttribute('aria-label'), g.getAttribute('tabindex')])""")
    assert sorted(pod for pod, _, _ in drawn) == sorted(want)
    for pod, label, tabindex in drawn:
        assert tabindex == "0" and all(ip in label for ip in want[pod].split()), label
    svc = browser.find_element(By.CSS_SELECTOR, '#services tr[data-service="shop/web"]').text
    assert "10." in svc and "fd00:10:96" in svc
    shot(browser, "topology")


def test_pod_deleted_with_the_cli_leaves_the_page_within_2s(lab, url, browser):
    browser.get(url)
    wait_for("batch/worker on the page", lambda: "batch/worker" in listed(browser))
    lab.podnet("delete", "pod", "worker", "-n", "batch", "--grace-period=0", "--force")
    t0 = time.monotonic()
    wait_for("batch/worker to leave the page", lambda: "batch/worker" not in listed(browser), timeout=2.0)
    assert time.monotonic() - t0 <= 2.0
    assert not browser.execute_script("return document.querySelector('#topo-drawing [data-pod=\"batch/worker\"]')")


def test_keyboard_reaches_every_pod_and_enter_picks_a_trace_source(lab, url, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    browser.get(url)
    want = set(wait_for("the drawing", lambda: listed(browser)))
    focused = lambda: browser.execute_script(  # noqa: E731
        "const e = document.activeElement; return e && e.dataset ? e.dataset.pod || null : null")
    reached: list[str] = []
    for _ in range(len(want) + 20):  # the tabs and links before the drawing, then one stop per pod
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if focused():
            reached.append(focused())
            if len(reached) == len(want):
                break
    assert set(reached) == want
    while focused() != "shop/client":
        ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_for("the trace tab", lambda: browser.execute_script("return location.hash") == "#trace")
    assert browser.execute_script("return document.querySelector('#trace-form select[name=src]').value") == "shop/client"


def page_cells(d: Any, attr: str) -> dict[tuple[str, str], Any]:
    raw = d.execute_script(f"""return [...document.querySelectorAll('#matrix-table td[data-from]')]
        .map(td => [td.dataset.from, td.dataset.to, td.dataset.{attr}])""")
    return {(f, t): json.loads(v) for f, t, v in raw}


def test_matrix_equals_analyze_and_the_probe(lab, url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    browser.get(url + "#matrix")
    wait_for("the namespace choice", lambda: browser.find_elements(
        By.CSS_SELECTOR, '#matrix-form select[name=namespace] option[value="uim"]'))
    Select(browser.find_element(By.CSS_SELECTOR, "#matrix-form select[name=namespace]")).select_by_value("uim")
    port = browser.find_element(By.CSS_SELECTOR, "#matrix-form input[name=port]")
    port.clear()
    port.send_keys("8080")
    browser.find_element(By.CSS_SELECTOR, "#matrix-form button[type=submit]").click()
    matrix_status = lambda: browser.find_element(By.ID, "matrix-status").text  # noqa: E731
    wait_for("the predicted table", lambda: "predicted 3 × 3" in matrix_status(), show=matrix_status)
    analyzed = json.loads(lab.podnet("analyze", "-f", str(lab.home / "matrix.yaml"), "-n", "uim",
                                     "--port", "8080", "-o", "json").stdout)
    want = {(c["from"], c["to"]): c["allowed"] for c in analyzed["tables"][0]["cells"]}
    assert page_cells(browser, "predicted") == want
    assert want[("uim/a", "uim/b")] is True and want[("uim/c", "uim/b")] is False
    browser.find_element(By.ID, "probe-btn").click()
    status = wait_for("the probe", lambda: (lambda t: t if t.startswith("measured") else None)(
        browser.find_element(By.ID, "matrix-status").text), timeout=30)
    assert status == "measured: every cell as predicted"
    assert page_cells(browser, "measured") == want
    assert not browser.find_elements(By.CSS_SELECTOR, "#matrix-table td.differs")
    browser.find_element(By.CSS_SELECTOR, '#matrix-table td[data-from="uim/c"][data-to="uim/b"] button').click()
    why = wait_for("the explanation", lambda: (lambda t: t if "denied" in t else None)(
        browser.find_element(By.ID, "explain").text))
    assert "uim/b-from-a" in why
    shot(browser, "matrix")


def test_trace_drawing_shows_the_hops_trace_prints(lab, url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    printed = json.loads(lab.podnet("trace", "--lab", lab.name, "-n", "shop", "client", "web:80",
                                    "--no-confirm", "-o", "json").stdout)
    browser.get(url + "#trace")
    wait_for("the source choice", lambda: browser.find_elements(
        By.CSS_SELECTOR, '#trace-form select[name=src] option[value="shop/client"]'))
    Select(browser.find_element(By.CSS_SELECTOR, "#trace-form select[name=src]")).select_by_value("shop/client")
    browser.find_element(By.CSS_SELECTOR, "#trace-form input[name=dst]").send_keys("web:80")
    browser.find_element(By.CSS_SELECTOR, "#trace-form button[type=submit]").click()
    wait_for("the drawing", lambda: browser.find_elements(By.CSS_SELECTOR, "#trace-drawing .hop"))

    def drawn(direction: str) -> list[str]:
        return [h.get_attribute("data-where") for h in browser.find_elements(
            By.CSS_SELECTOR, f'#trace-drawing .path[data-direction="{direction}"] .hop')]
    assert drawn("request") == [h["where"] for h in printed["request"]["hops"]]
    assert drawn("reply") == [h["where"] for h in printed["reply"]["hops"]]
    layers = browser.find_element(By.CSS_SELECTOR, "#trace-drawing .hop .packet").text
    assert "L2" in layers and "L3" in layers and "L4" in layers and "dport 80" in layers
    browser.find_element(By.ID, "confirm-btn").click()
    wait_for("the kernel's confirmation", lambda: "confirmed this path" in browser.find_element(
        By.ID, "trace-drawing").text, timeout=30)
    shot(browser, "trace")


def test_flows_panel_lists_the_traffic_with_drops_and_policy(lab, url, browser):
    """The probe above sent uim/c → uim/b, which uim/b-from-a dropped: the Flows tab,
    filtered as `podnet flows --verdict dropped --to uim/b`, shows it highlighted, naming
    the policy."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    browser.get(url + "#flows")
    flows_status = lambda: browser.find_element(By.ID, "flows-status").text  # noqa: E731
    wait_for("flow records", lambda: "record(s)" in flows_status(), timeout=15, show=flows_status)
    rows = lambda: browser.execute_script(  # noqa: E731 (one read: the list is redrawn every 2 s)
        "return [...document.querySelectorAll('#flows-table tbody tr')].map(r => [r.className, r.innerText])")
    assert any("forwarded" in t for _, t in rows())  # unfiltered: the demo's traffic went through
    Select(browser.find_element(By.CSS_SELECTOR, "#flows-form select[name=verdict]")).select_by_value("dropped")
    to = browser.find_element(By.CSS_SELECTOR, "#flows-form input[name=to]")
    to.send_keys("uim/b")
    to.send_keys(Keys.TAB)  # a change event: the list is asked for again with the filter
    # the server's answer to the whole filter: only drops to uim/b, among them uim/c's
    got = wait_for("only the dropped connections to uim/b", lambda: (lambda rs: rs if rs and all(
        "dropped" in t and "uim/b" in t for _, t in rs) and any(c == "drop" and "uim/c" in t for c, t in rs)
        else None)(rows()), timeout=10, show=rows)
    row = next(t for c, t in got if c == "drop" and "uim/c" in t)
    assert "dropped" in row and "b-from-a" in row
    shot(browser, "flows")
    # the policy named is a link to the reachability of its namespace
    browser.execute_script("""document.querySelector('#flows-table a[data-policy="uim/b-from-a"]').click()""")
    wait_for("the matrix of uim", lambda: "predicted 3 × 3" in browser.find_element(By.ID, "matrix-status").text)


def test_reflows_at_200_percent_zoom(lab, url, browser):
    """200% zoom of a 1280-pixel window is a 640-CSS-pixel viewport: no view scrolls
    sideways as a whole (wide tables scroll inside their own box)."""
    from selenium.webdriver.common.by import By
    size = browser.get_window_size()
    browser.set_window_size(640, 900)
    try:
        for tab in ("topology", "matrix", "trace", "flows"):
            browser.get(f"{url}#{tab}")
            wait_for("the page", lambda: listed(browser))
            if tab == "trace":
                browser.find_element(By.CSS_SELECTOR, "#trace-form input[name=dst]").send_keys("web.shop:80/TCP")
                browser.find_element(By.CSS_SELECTOR, "#trace-form button[type=submit]").click()
                wait_for("the drawing", lambda: browser.find_elements(By.CSS_SELECTOR, "#trace-drawing .hop"))
            if tab == "matrix":
                wait_for("the matrix", lambda: browser.find_elements(By.CSS_SELECTOR, "#matrix-table td"))
            inner, scroll = browser.execute_script(
                "return [innerWidth, document.documentElement.scrollWidth]")
            assert scroll <= inner, f"{tab}: the page is {scroll} px wide in a {inner} px viewport"
            shot(browser, f"zoom200-{tab}")
    finally:
        browser.set_window_size(size["width"], size["height"])
