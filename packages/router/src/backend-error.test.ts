import { ProtocolError } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import { BackendError } from "./backend-error.js";

describe("BackendError.badRequestOn", () => {
  it("returns what the read returns", () => {
    expect(BackendError.badRequestOn("reading", () => 7)).toBe(7);
  });

  it("turns a ProtocolError into a BadRequest that names the read", () => {
    const err = (() => {
      try {
        BackendError.badRequestOn("failed to get cluster name", () => {
          throw new ProtocolError("missing-extension", "extension not found");
        });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).status).toMatchObject({ reason: "BadRequest", code: 400, message: "failed to get cluster name, extension not found" });
  });

  it("lets other errors through", () => {
    expect(() => BackendError.badRequestOn("x", () => { throw new TypeError("bug"); })).toThrow(TypeError);
  });
});
