// The S1 job written the Node.js child_process way, as the issue measured
// it: the parent reads 1BRC lines, sends batches of 10,000 lines to 2
// children over IPC; each child keeps per-station sum/count for the current
// 1-second window and sends its partial back when the window ends; the
// parent merges. Prints records/s.
//
// usage: node bench/stream_node.js FILE
'use strict';
const { fork } = require('child_process');
const fs = require('fs');
const readline = require('readline');

if (process.argv[2] === '--child') {
  let table = new Map();
  let windowEnd = Math.floor(Date.now() / 1000) * 1000 + 1000;
  const flush = () => {
    process.send({ partial: Array.from(table.entries()), windowEnd });
    table = new Map();
  };
  process.on('message', (m) => {
    if (m === 'end') { flush(); process.exit(0); }
    const now = Date.now();
    if (now >= windowEnd) { flush(); windowEnd = Math.floor(now / 1000) * 1000 + 1000; }
    for (const line of m) {
      const i = line.indexOf(';');
      const name = line.slice(0, i);
      const t = parseFloat(line.slice(i + 1));
      const s = table.get(name);
      if (s) { s[0] += t; s[1] += 1; } else { table.set(name, [t, 1]); }
    }
    process.send({ ack: m.length });
  });
  return;
}

const file = process.argv[2];
const children = [0, 1].map(() => fork(__filename, ['--child']));
const inFlight = [0, 0];
const merged = new Map();
let records = 0, done = 0;
const start = process.hrtime.bigint();
for (const [i, c] of children.entries()) {
  c.on('message', (m) => {
    if (m.ack) { inFlight[i] -= 1; if (rl.paused && inFlight.every((n) => n < 4)) { rl.paused = false; rl.resume(); } }
    if (m.partial) for (const [k, [s, n]] of m.partial) {
      const e = merged.get(k); if (e) { e[0] += s; e[1] += n; } else merged.set(k, [s, n]);
    }
  });
  c.on('exit', () => {
    if (++done === 2) {
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      console.log(`${records} records in ${secs.toFixed(3)} s: ${Math.round(records / secs)} records/s (node child_process, 2 children, batches of 10000)`);
    }
  });
}
const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
let batch = [], next = 0;
rl.on('line', (line) => {
  batch.push(line); records++;
  if (batch.length === 10000) {
    const i = inFlight[0] <= inFlight[1] ? 0 : 1;
    children[i].send(batch); inFlight[i] += 1; batch = [];
    if (inFlight.every((n) => n >= 4)) { rl.paused = true; rl.pause(); }
  }
});
rl.on('close', () => {
  if (batch.length) children[next].send(batch);
  for (const c of children) c.send('end');
});
