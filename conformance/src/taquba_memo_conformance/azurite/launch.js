// Starts azurite-blob with its blob garbage collector on a period of our choosing.
//
// usage: node launch.js <azurite-blob main.js> <gc interval ms> [azurite-blob options...]
//
// Why: Azurite runs its garbage collector 10 minutes after start and every 10
// minutes after that, with no option to change it. In memory mode a pass over a
// test session's worth of objects keeps its one thread busy for minutes, and
// every request meanwhile waits (measured: see servers.py). The interval is a
// default parameter read from the exported constants when the server is built,
// so setting it before loading main.js is enough.
"use strict";

const path = require("path");

const [blobMain, gcIntervalMs, ...options] = process.argv.slice(2);
const interval = Number(gcIntervalMs);
if (!blobMain || !Number.isInteger(interval) || interval < 1) {
  console.error("usage: node launch.js <azurite-blob main.js> <gc interval ms> [options...]");
  process.exit(2);
}
const constants = require(path.join(path.dirname(blobMain), "utils", "constants.js"));
if (typeof constants.DEFAULT_GC_INTERVAL_MS !== "number") {
  console.error("this Azurite has no DEFAULT_GC_INTERVAL_MS; refusing to guess");
  process.exit(2);
}
constants.DEFAULT_GC_INTERVAL_MS = interval;
process.argv = [process.argv[0], blobMain, ...options];
require(blobMain);
