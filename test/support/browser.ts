// The browser the page tests drive: the Chromium that the npm package @sparticuz/chromium ships
// (unpacked to /tmp on first use), so `npm install` is the whole set-up; CME_CHROMIUM names
// another binary instead (for example Debian's /usr/bin/chromium). playwright-core launches it.
import sparticuz from "@sparticuz/chromium";
import { chromium, type Browser } from "playwright-core";

// Without these, Chromium keeps dialling Google's hosts, which this machine's closed network
// refuses many at a time.
const QUIET = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// The package's defaults are tuned for serverless hosts. Two would hide a page bug (a
// cross-origin request the real browser refuses), and in one process the whole browser exits
// with the first page a test closes, so the tests do without them.
const UNSAFE = new Set(["--disable-web-security", "--allow-running-insecure-content", "--single-process"]);

export async function launchBrowser(): Promise<Browser> {
  const override = process.env.CME_CHROMIUM;
  if (override !== undefined && override !== "") {
    return chromium.launch({ executablePath: override, args: QUIET });
  }
  const args = [...new Set([...sparticuz.args.filter((a) => !UNSAFE.has(a)), ...QUIET])];
  return chromium.launch({ executablePath: await sparticuz.executablePath(), args, headless: true });
}

// tsx compiles with esbuild's keepNames, which wraps named functions in a `__name(...)` helper;
// functions serialized into the page (evaluate, addInitScript) need it defined there too.
export const KEEP_NAMES_SHIM = "globalThis.__name = globalThis.__name || ((f) => f);";
