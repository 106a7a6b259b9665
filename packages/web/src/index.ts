/**
 * `@clientful/web`: Clientful in the browser. The module itself (`pkg/clientful_web.js`,
 * built by `scripts/web/build.sh`) exports the replicas, rooms and storage; this package
 * adds the JavaScript bindings on top of it.
 */
export { ClientfulProvider } from "./provider.js";
export type { ClientfulProviderOptions, YjsRoomReplica } from "./provider.js";
