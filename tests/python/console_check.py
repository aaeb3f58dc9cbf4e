"""Drives the hub's web console in headless Chromium (Debian's chromium and
chromium-driver, through selenium): checks that the dashboard shows the
live connection count and that the trace view displays a traced message's
path, and saves screenshots. Args: BASE_URL TOKEN CONNECTIONS TOPIC OUT_DIR."""
import os
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, token, connections, topic, out_dir = sys.argv[1:6]
profile = tempfile.mkdtemp(prefix="hub-console-")
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900",
]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    driver.set_page_load_timeout(30)
    # The page itself needs the credential: send it on every request, as a
    # browser with a stored login would; the script then uses the token from
    # the URL fragment for its API calls.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {token}"}})
    driver.get(f"{base}/console#token={token}")
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.ID, "connections").text == connections)
    # A second sample draws the rate chart.
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chart-conns polyline")) > 0)
    os.makedirs(out_dir, exist_ok=True)
    driver.save_screenshot(os.path.join(out_dir, "console.png"))
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-tab="trace"]').click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trace-path li.hop")) >= 4)
    title = driver.find_element(By.ID, "trace-title").text
    hops = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#trace-path li.hop")]
    assert topic in title, title
    kinds = [h.split()[0] for h in hops]
    assert kinds[:4] == ["received", "queued", "sent", "acked"], hops
    driver.save_screenshot(os.path.join(out_dir, "console-trace.png"))
    # Clients and sessions list the connected clients.
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-tab="clients"]').click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions-table tbody tr")) == int(connections))
    ids = sorted(r.find_elements(By.TAG_NAME, "td")[0].text for r in driver.find_elements(By.CSS_SELECTOR, "#sessions-table tbody tr"))
    print("clients", ids)
    print("OK", connections, kinds, ids)
finally:
    driver.quit()
