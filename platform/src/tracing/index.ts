/**
 * Spans of each call, exported over OTLP/HTTP when an endpoint is configured
 * (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, as
 * every OpenTelemetry SDK reads them). See docs/console.md, "Traces".
 *
 * One call, three spans, all exported by the platform process (devices are
 * strangers' machines: they never reach the operator's collector):
 *
 * - `gateway <app>/<fn>` (server): from the request's arrival to the answer,
 *   child of the caller's `traceparent` when it sent one. Its span id is the
 *   parent the device and the function see.
 * - `fabric` (client): from the first send to the device's answer, with the
 *   device that answered.
 * - `device` (internal): the device's own wall time for the call, as the
 *   device reported it, ending when its answer arrived (a device's claim, so
 *   it is capped by the fabric span around it).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Span, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { formatTraceparent, parseTraceparent } from "@hearth/protocol";

export interface CallTracingOptions {
  /** The OTLP/HTTP traces URL (…/v1/traces). */
  endpoint: string;
  region?: string;
  /** How long spans wait to be sent in one batch (default 2 s; tests shorten it). */
  exportEveryMs?: number;
}

/** What the gateway learnt of a call, to close its spans with. */
export interface CallEnd {
  status: number;
  errorCode?: string;
  deviceId?: string;
  /** performance.now() of the first send to a device, and of the answer that was used. */
  sentAt?: number;
  answeredAt?: number;
  /** The device's own wall time for the call, ms, as it reported it. */
  deviceWallMs?: number;
  cpuMs?: number;
}

export interface CallSpan {
  /** What the device and the function get as their parent: this span in the caller's trace. */
  readonly traceparent: string;
  end(info: CallEnd): void;
}

export class CallTracing {
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;

  constructor(options: CallTracingOptions) {
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({ "service.name": "hearth-platform", ...(options.region ? { "cloud.region": options.region } : {}) }),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.endpoint }), scheduledDelayMillis: options.exportEveryMs ?? 2_000 })],
    });
    this.tracer = this.provider.getTracer("hearth-gateway");
  }

  /** Opens the gateway span of a call, in the caller's trace when its `traceparent` is well formed. */
  start(callerTraceparent: string | undefined, attributes: { app: string; fn: string; method: string; door: string; requestId: string }): CallSpan {
    const parent = parseTraceparent(callerTraceparent);
    const context = parent
      ? trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true })
      : ROOT_CONTEXT;
    const span = this.tracer.startSpan(
      `gateway ${attributes.app}/${attributes.fn}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "hearth.app": attributes.app, "hearth.function": attributes.fn, "http.request.method": attributes.method,
          "hearth.door": attributes.door, "hearth.request_id": attributes.requestId,
        },
      },
      context,
    );
    const sc = span.spanContext();
    return {
      traceparent: formatTraceparent({ traceId: sc.traceId, spanId: sc.spanId, flags: parent?.flags ?? "01" }),
      end: (info) => this.end(span, info),
    };
  }

  private end(span: Span, info: CallEnd): void {
    const inside = trace.setSpan(ROOT_CONTEXT, span);
    if (info.sentAt !== undefined && info.answeredAt !== undefined) {
      const fabric = this.tracer.startSpan("fabric", { kind: SpanKind.CLIENT, startTime: info.sentAt, attributes: info.deviceId ? { "hearth.device": info.deviceId } : {} }, inside);
      if (info.deviceWallMs !== undefined) {
        // the device's claim, inside what the gateway saw
        const wall = Math.min(info.deviceWallMs, info.answeredAt - info.sentAt);
        const device = this.tracer.startSpan(
          "device",
          { kind: SpanKind.INTERNAL, startTime: info.answeredAt - wall, attributes: { ...(info.deviceId ? { "hearth.device": info.deviceId } : {}), ...(info.cpuMs !== undefined ? { "hearth.cpu_ms": info.cpuMs } : {}) } },
          trace.setSpan(ROOT_CONTEXT, fabric),
        );
        device.end(info.answeredAt);
      }
      fabric.end(info.answeredAt);
    }
    span.setAttribute("http.response.status_code", info.status);
    if (info.errorCode) {
      span.setAttribute("hearth.error_code", info.errorCode);
      if (info.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: info.errorCode });
    }
    span.end();
  }

  /** Sends what is left and stops. */
  async close(): Promise<void> {
    await this.provider.shutdown().catch(() => undefined);
  }
}
