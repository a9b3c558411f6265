#!/usr/bin/env node
import { main } from "../dist/cli.js";

// Exit as soon as main is done: after a failed start, a database client's pending connection
// attempt would otherwise keep the process alive until its connect timeout.
process.exit(await main(process.argv.slice(2)));
