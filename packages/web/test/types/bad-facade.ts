// Compiled (not run) by types.test.mjs: must NOT compile: an unknown role and a space
// event that does not exist are type errors at the facade's surface.
import type { SpaceProxy } from "../../dist/index.js";

export async function bad(space: SpaceProxy): Promise<void> {
  await space.createInvite("owner", true);
  space.on("presence", () => undefined);
}
