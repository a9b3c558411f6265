import { registerSuite } from "./suite.js";

// The split deployment: `--mode work-service`, `--mode db-service` and `--mode consumer-controller`
// as separate processes, and `--mode router` in front of them, which the agents connect to.
registerSuite("split");
