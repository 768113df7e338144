/**
 * Optional OpenTelemetry tracing through `@opentelemetry/api`, loaded when the app has it (it is an
 * optional peer dependency): a span for each enqueue (kind producer) and one per attempt (kind
 * consumer), the attempt's span a child of the enqueue's through the W3C trace context stored
 * with the job (`tp` in its options). Without an SDK registered the API's spans do not record, and
 * nothing is stored or sent.
 * @module
 */

/** The few members of `@opentelemetry/api` used here (no type dependency on the package). */
export interface OtelSpan {
  isRecording(): boolean;
  setAttribute(key: string, value: string | number | boolean): unknown;
  setAttributes(attributes: Record<string, string | number | boolean>): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(e: unknown): unknown;
  end(): void;
}
interface OtelApi {
  trace: {
    getTracer(name: string, version?: string): { startSpan(name: string, options?: { kind?: number; attributes?: Record<string, string | number | boolean> }, context?: unknown): OtelSpan };
    setSpan(context: unknown, span: OtelSpan): unknown;
    getTracerProvider(): { getDelegate?(): unknown };
  };
  context: { active(): unknown };
  ProxyTracerProvider?: new () => { getDelegate(): unknown };
  propagation: {
    inject(context: unknown, carrier: Record<string, string>): void;
    extract(context: unknown, carrier: Record<string, string>): unknown;
  };
}

/** SpanKind values of the API (stable in its 1.x). */
const PRODUCER = 3;
const CONSUMER = 4;
/** SpanStatusCode.ERROR */
const ERROR = 2;

let loading: Promise<OtelApi | null> | undefined;
let noopProvider: unknown;

/**
 * Whether a tracer provider (an SDK) is registered: without one every span would be a no-op, and
 * the hot paths skip them entirely (two property reads instead of a span per job).
 */
export function tracingActive(api: OtelApi): boolean {
  const provider = api.trace.getTracerProvider();
  if (typeof provider.getDelegate !== "function") return true; // a provider set some other way
  if (noopProvider === undefined && api.ProxyTracerProvider) noopProvider = new api.ProxyTracerProvider().getDelegate();
  return provider.getDelegate() !== noopProvider;
}

/** `@opentelemetry/api` when the app has it, else null. Loaded once, on first use. */
export function loadOtel(): Promise<OtelApi | null> {
  // a specifier bundlers do not follow: an app without OpenTelemetry bundles nothing of it
  const name = "@opentelemetry/api";
  return (loading ??= (import(name) as Promise<OtelApi>).then((m) => (m?.trace ? m : null), () => null));
}

/** An enqueue's span, and the trace context to store with its jobs (when it records). */
export async function enqueueSpan(queue: string, task: string, count: number): Promise<{ traceparent?: string; end(error?: unknown): void } | undefined> {
  const api = await loadOtel();
  if (!api || !tracingActive(api)) return undefined;
  const span = api.trace.getTracer("sluice").startSpan(`enqueue ${task}`, {
    kind: PRODUCER,
    attributes: { "messaging.system": "sluice", "messaging.operation.type": "send", "messaging.destination.name": queue, "sluice.task": task, "messaging.batch.message_count": count },
  });
  if (!span.isRecording()) return undefined;
  const carrier: Record<string, string> = {};
  api.propagation.inject(api.trace.setSpan(api.context.active(), span), carrier);
  return {
    traceparent: carrier.traceparent,
    end(error?: unknown) {
      if (error !== undefined) {
        span.recordException(error);
        span.setStatus({ code: ERROR, message: String((error as Error)?.message ?? error) });
      }
      span.end();
    },
  };
}

const tracers = new WeakMap<OtelApi, ReturnType<OtelApi["trace"]["getTracer"]>>();

/**
 * Starts an attempt's span, a child of the enqueue's when its trace context was stored. Kept cheap
 * when nothing records (no SDK): one non-recording span, no attributes built.
 */
export function attemptSpan(api: OtelApi, job: { id: string; name: string; queue: string; attempt: number }, traceparent: string | undefined): OtelSpan | undefined {
  let tracer = tracers.get(api);
  if (!tracer) tracers.set(api, (tracer = api.trace.getTracer("sluice")));
  const parent = traceparent ? api.propagation.extract(api.context.active(), { traceparent }) : undefined;
  const span = tracer.startSpan(`process ${job.name}`, { kind: CONSUMER }, parent);
  if (!span.isRecording()) return undefined;
  span.setAttributes({ "messaging.system": "sluice", "messaging.operation.type": "process", "messaging.destination.name": job.queue, "messaging.message.id": job.id, "sluice.task": job.name, "sluice.attempt": job.attempt });
  return span;
}

/** Ends an attempt's span with its outcome and abort reason. */
export function endAttemptSpan(span: OtelSpan, outcome: string, abortReason: string | undefined, error: unknown): void {
  span.setAttribute("sluice.outcome", outcome);
  if (abortReason) span.setAttribute("sluice.abort_reason", abortReason);
  if (error !== undefined && outcome !== "completed") {
    span.recordException(error);
    span.setStatus({ code: ERROR, message: String((error as Error)?.message ?? error) });
  }
  span.end();
}
