import { registerSuite } from "./suite.js";

// `conductor serve --mode all`: one process serves agents, the kube and maestro sources, the hub
// services and the consumer controller.
registerSuite("single");
