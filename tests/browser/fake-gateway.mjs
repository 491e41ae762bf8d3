#!/usr/bin/env node
// Starts the test suite's fake gateway on its own, to exercise the "real gateway" code path
// of the tests (SLUICE_BASE_URL + EVENTS_URL) without the Rust server:
//   node fake-gateway.mjs [port]     prints its base URL, serves until killed
//   SLUICE_BASE_URL=<base> EVENTS_URL=<base>/__graph ./run.sh
// GET /__events returns the raw /collect bodies; GET /__graph the same events shaped like
// Graph API requests ({requests: [{pixel_id, data: [event]}]}).
import { startFakeGateway } from './harness.mjs';

const gw = await startFakeGateway(Number(process.argv[2] || 0));
console.log(gw.base);
const stop = () => gw.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
