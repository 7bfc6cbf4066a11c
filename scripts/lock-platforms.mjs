#!/usr/bin/env node
// Run after any `npm install` that rewrites package-lock.json: node scripts/lock-platforms.mjs package-lock.json
// The registry snapshot here lacks EDR's non-linux-x64 platform packages, so npm leaves them
// out of the lock and `npm ci` then refuses the lock as out of sync. Add them as they would be
// written on a full registry: optional, platform-gated, so npm never fetches them on this OS.
import { readFileSync, writeFileSync } from "node:fs";
const path = process.argv[2];
const lock = JSON.parse(readFileSync(path, "utf8"));
const platforms = {
  "darwin-arm64": { os: ["darwin"], cpu: ["arm64"] },
  "darwin-x64": { os: ["darwin"], cpu: ["x64"] },
  "linux-arm64-gnu": { os: ["linux"], cpu: ["arm64"], libc: ["glibc"] },
  "linux-arm64-musl": { os: ["linux"], cpu: ["arm64"], libc: ["musl"] },
  "win32-x64-msvc": { os: ["win32"], cpu: ["x64"] },
};
const version = lock.packages["node_modules/@nomicfoundation/edr"].version;
let added = 0;
for (const [name, gate] of Object.entries(platforms)) {
  const key = `node_modules/@nomicfoundation/edr-${name}`;
  if (lock.packages[key]) continue;
  lock.packages[key] = {
    version,
    resolved: `https://registry.npmjs.org/@nomicfoundation/edr-${name}/-/edr-${name}-${version}.tgz`,
    dev: true, license: "MIT", optional: true, ...gate, engines: { node: ">= 22" },
  };
  added++;
}
const sorted = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)));
lock.packages = sorted;
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`added ${added}`);
