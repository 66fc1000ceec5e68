/**
 * Serves bundles to devices over the fabric: a request on a device's own
 * bundle subject with `{ hash }` is answered with the bundle's raw bytes,
 * when that device may run it (Store.mayFetchBundle): the device is known
 * from the subject, which only its credential may publish on. Devices verify
 * the hash before they run anything.
 */
import { BundleRequest, DEVICE_MESSAGE_BYTES, HearthError, INVOKE_HEADERS, type Subjects } from "@hearth/protocol";
import { headers, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { BUNDLE_REQUEST_BUDGET, deviceBudget } from "../identity/device-budget.ts";
import type { Logger } from "../log/index.ts";
import type { Store } from "../state/index.ts";

export function serveBundles(nc: NatsConnection, subjects: Subjects, store: Store, log: Logger): Subscription {
  const budget = deviceBudget(BUNDLE_REQUEST_BUDGET);
  return nc.subscribe(subjects.bundleGets, {
    queue: "platform",
    callback: (err, msg) => {
      if (err) return;
      const deviceId = subjects.deviceOf(msg.subject, "bundle");
      if (!deviceId) return;
      // The platform answers with the whole account's credential, and nats-server does not check a publisher's
      // reply-to: an answer goes only to the asking device's own inbox, never to a subject it named (a stream's
      // delete API, a usage subject, another device).
      if (!msg.reply?.startsWith(`${subjects.inbox(deviceId)}.`)) return;
      const replyError = (error: HearthError) => {
        const h = headers();
        h.set(INVOKE_HEADERS.errorCode, error.code);
        h.set(INVOKE_HEADERS.errorMessage, error.message);
        msg.respond(new Uint8Array(0), { headers: h });
      };
      let parsed;
      try {
        parsed = msg.data.length > DEVICE_MESSAGE_BYTES.bundleRequest ? undefined : BundleRequest.safeParse(msg.json());
      } catch {
        parsed = undefined;
      }
      if (!parsed?.success) {
        replyError(new HearthError("ERR_BAD_MESSAGE", "bundle request must be JSON { hash: <sha256 hex> }"));
        return;
      }
      const { hash } = parsed.data;
      const refused = () => new HearthError("ERR_VERSION_NOT_FOUND", `no bundle ${hash} for device ${deviceId}`);
      (async () => {
        if (!(await budget.spend(deviceId))) return "over budget" as const;
        return (await store.mayFetchBundle(deviceId, hash)) ? store.getBundle(hash) : null;
      })().then(
        (bundle) => {
          if (bundle === "over budget") {
            return replyError(new HearthError("ERR_DEVICE_BUSY", `device ${deviceId} asked for too many bundles; ask again in a minute`));
          }
          // not allowed and not there read the same: a device learns nothing of bundles it may not run
          if (!bundle) return replyError(refused());
          const h = headers();
          h.set(INVOKE_HEADERS.sha256, hash);
          msg.respond(bundle, { headers: h });
        },
        (error: unknown) => {
          log.error({ err: error, hash }, "could not read a bundle");
          replyError(new HearthError("ERR_INTERNAL", "could not read the bundle"));
        },
      );
    },
  });
}
