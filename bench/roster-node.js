// bench/roster-node.js: the roster handlers of bench/roster_read.lua in Node: JSON.parse and the
// same loops, bodies handled a second (best of rounds) printed as JSON for the Lua side.
"use strict";
const fs = require("fs");
const body = fs.readFileSync(process.argv[2], "utf8");
const seconds = Number(process.argv[3] || 0.3);

function readOne(text) {
  let n = 0;
  for (const ev of JSON.parse(text).value)
    for (const p of ev.resourceData) if (p.id) n++;
  return n;
}

function readAll(text) {
  let n = 0;
  for (const ev of JSON.parse(text).value) {
    for (const p of ev.resourceData) {
      const u = p.info.identity.user;
      if (p.id && u.displayName && u.id && u.tenantId && p.info.endpointType && p.info.region &&
          p.info.languageId) n++;
      for (const s of p.mediaStreams)
        if (s.mediaType && s.label && s.sourceId && s.direction && s.serverMuted === false) n++;
      if (p.isMuted) n++;
      if (p.isInLobby === false && p.rosterSequenceNumber > 0 && p.metadata === null) n++;
      if (p.recordingInfo.recordingStatus && p.recordingInfo.initiator === null) n++;
    }
  }
  return n;
}

function rate(fn) {
  let best = 0;
  for (let round = 0; round < 5; round++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    let t;
    do { fn(body); n++; t = Number(process.hrtime.bigint() - t0) / 1e9; } while (t < seconds);
    best = Math.max(best, n / t);
  }
  return best;
}

const check = { one: readOne(body), all: readAll(body) };
process.stdout.write(JSON.stringify({ one: rate(readOne), all: rate(readAll), check,
                                      version: process.version }) + "\n");
