// Lighthouse (npm) against Debian chromium, default mobile emulation (Moto G Power screen,
// simulated slow 4G, 4x CPU slowdown). Usage: node bench/lighthouse.mjs URL [URL ...]
// A session cookie for signed-in pages comes from $LIGHTHOUSE_COOKIE. Prints one JSON object
// per URL with the category scores (0-100) and the main timings.
import lighthouse from "lighthouse";
import * as chromeLauncher from "chrome-launcher";

const urls = process.argv.slice(2);
const chrome = await chromeLauncher.launch({
  chromePath: process.env.CHROME_PATH || "/usr/bin/chromium",
  chromeFlags: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  for (const url of urls) {
    const cookie = process.env.LIGHTHOUSE_COOKIE;
    const runner = await lighthouse(url, {
      port: chrome.port, output: "json", logLevel: "error",
      onlyCategories: ["performance", "accessibility", "best-practices"],
      extraHeaders: cookie ? { Cookie: cookie } : undefined,
    });
    const lhr = runner.lhr;
    const score = (k) => Math.round(100 * (lhr.categories[k]?.score ?? 0));
    const ms = (k) => Math.round(lhr.audits[k]?.numericValue ?? -1);
    const failed = Object.values(lhr.audits)
      .filter((a) => a.score !== null && a.score < 0.9 && lhr.categories.accessibility.auditRefs.some((r) => r.id === a.id && r.weight > 0))
      .map((a) => a.id);
    console.log(JSON.stringify({
      url, final_url: lhr.finalDisplayedUrl, form_factor: lhr.configSettings.formFactor,
      performance: score("performance"), accessibility: score("accessibility"),
      best_practices: score("best-practices"),
      fcp_ms: ms("first-contentful-paint"), lcp_ms: ms("largest-contentful-paint"),
      tbt_ms: ms("total-blocking-time"), cls: lhr.audits["cumulative-layout-shift"]?.numericValue ?? null,
      a11y_failed: failed, runtime_error: lhr.runtimeError?.message ?? null,
    }));
  }
} finally {
  await chrome.kill();
}
