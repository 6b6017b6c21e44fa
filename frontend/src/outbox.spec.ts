/**
 * The outbox against a fake server (a scripted fetch) and the real store interfaces:
 * fake-indexeddb for IndexedDB, jsdom's localStorage for the fallback.
 */
import {
  IndexedDbStore,
  LocalStorageStore,
  MemoryStore,
  openOutboxStore,
  type OutboxStore,
} from "./outbox-store";
import { Outbox, PermanentFailure } from "./outbox";

type Reply = Response | Error;

/** A fetch that answers from a script, records every call, and can hold a reply back. */
function scriptedFetch(...replies: Array<Reply | (() => Reply | Promise<Reply>)>) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = replies.shift() ?? json(201, {});
    const reply = typeof next === "function" ? await next() : next;
    if (reply instanceof Error) throw reply;
    return reply;
  });
  return { fetch: fetchMock as unknown as typeof fetch, calls };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

let dbCounter = 0;
async function freshIdb(): Promise<{ store: IndexedDbStore; name: string }> {
  const name = `outbox-test-${dbCounter++}`;
  return { store: await IndexedDbStore.open(indexedDB, name), name };
}

const BODY = { choice: 1, confidence: 3, rt_ms: 812.5 };

describe("Outbox", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test("it writes the answer to IndexedDB before sending it", async () => {
    const { store } = await freshIdb();
    let storedAtSend: unknown[] = [];
    const { fetch } = scriptedFetch(async () => {
      storedAtSend = await store.all();
      return json(201, { feedback: { correct: true } });
    });
    const outbox = new Outbox({ store, fetch });

    const ack = await outbox.send("t/responses/0", "/api/v1/sessions/t/responses/0", BODY);

    expect(storedAtSend).toHaveLength(1);
    expect(storedAtSend[0]).toMatchObject({ key: "t/responses/0", body: JSON.stringify(BODY) });
    expect(ack).toEqual({ feedback: { correct: true } });
  });

  test("it removes the answer from the store on 200 and 201", async () => {
    const { store } = await freshIdb();
    const { fetch } = scriptedFetch(json(201, {}), json(200, {}));
    const outbox = new Outbox({ store, fetch });

    await outbox.send("a", "/a", BODY);
    await outbox.send("b", "/b", BODY);

    await vi.waitFor(async () => expect(await store.all()).toEqual([]));
    expect(outbox.size).toBe(0);
  });

  test("it sends a PUT with the JSON body and keepalive", async () => {
    const { fetch, calls } = scriptedFetch(json(201, {}));
    await new Outbox({ store: new MemoryStore(), fetch }).send("a", "/a", BODY);

    expect(calls[0].init).toMatchObject({ method: "PUT", keepalive: true });
    expect(JSON.parse(String(calls[0].init.body))).toEqual(BODY);
  });

  test("it retries after network errors and 5xx until the server acknowledges", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store } = await freshIdb();
    const { fetch, calls } = scriptedFetch(
      new TypeError("Failed to fetch"),
      json(503, { error: "unavailable", message: "down" }),
      json(429, { error: "slow_down", message: "" }),
      json(201, { feedback: { correct: false } }),
    );
    const outbox = new Outbox({ store, fetch, baseDelayMs: 100, random: () => 0.5 });

    const ack = outbox.send("k", "/k", BODY);
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(200);
    expect(calls).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(400);

    await expect(ack).resolves.toEqual({ feedback: { correct: false } });
    expect(calls).toHaveLength(4);
    await vi.waitFor(async () => expect(await store.all()).toEqual([]));
  });

  test("it keeps the answer in the store while retrying", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store } = await freshIdb();
    const { fetch, calls } = scriptedFetch(new TypeError("offline"));
    const outbox = new Outbox({ store, fetch, baseDelayMs: 1000 });

    void outbox.send("k", "/k", BODY);
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    await vi.advanceTimersByTimeAsync(10);

    expect(await store.all()).toHaveLength(1);
    expect(outbox.size).toBe(1);
  });

  test("it grows the backoff exponentially with jitter and caps it", () => {
    const outbox = new Outbox({ store: new MemoryStore(), baseDelayMs: 500, maxDelayMs: 4000 });
    const low = new Outbox({
      store: new MemoryStore(),
      baseDelayMs: 500,
      maxDelayMs: 4000,
      random: () => 0,
    });

    expect(low.retryDelay(1)).toBe(250);
    expect(low.retryDelay(3)).toBe(1000);
    expect(low.retryDelay(10)).toBe(2000);
    for (let failures = 1; failures < 12; failures++) {
      expect(outbox.retryDelay(failures)).toBeLessThanOrEqual(4000);
    }
  });

  test("it honours Retry-After on a 429", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { fetch, calls } = scriptedFetch(json(429, {}, { "Retry-After": "5" }), json(201, {}));
    const outbox = new Outbox({ store: new MemoryStore(), fetch, baseDelayMs: 100 });

    const ack = outbox.send("k", "/k", BODY);
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    await vi.advanceTimersByTimeAsync(4900);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);

    await expect(ack).resolves.toEqual({});
  });

  test("it never sends one entry twice while a send is in flight", async () => {
    let release: (reply: Response) => void = () => {};
    const held = new Promise<Response>((resolve) => (release = resolve));
    const { fetch, calls } = scriptedFetch(() => held);
    const store = new MemoryStore();
    const outbox = new Outbox({ store, fetch });

    const first = outbox.send("k", "/k", BODY);
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    const second = outbox.send("k", "/k", BODY);
    outbox.flush();
    await outbox.resume();
    release(json(201, { trial_index: 0 }));

    await expect(first).resolves.toEqual({ trial_index: 0 });
    await expect(second).resolves.toEqual({ trial_index: 0 });
    expect(calls).toHaveLength(1);
  });

  test("it surfaces a 409 as a permanent failure and does not retry it", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store } = await freshIdb();
    const { fetch, calls } = scriptedFetch(
      json(409, { error: "conflict", message: "A different answer is stored." }),
    );
    const failures: PermanentFailure[] = [];
    const outbox = new Outbox({ store, fetch, onPermanentFailure: (f) => failures.push(f) });

    const sent = outbox.send("k", "/k", BODY);

    await expect(sent).rejects.toMatchObject({ status: 409, code: "conflict" });
    await vi.waitFor(async () => expect(await store.all()).toEqual([]));
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls).toHaveLength(1);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(PermanentFailure);
    await vi.waitFor(async () => expect(await store.all()).toEqual([]));
    await expect(outbox.waitUntilEmpty()).resolves.toBeUndefined();
  });

  test("it treats 400 and 404 as permanent too", async () => {
    const { fetch } = scriptedFetch(json(400, { error: "bad", message: "no" }), json(404, {}));
    const outbox = new Outbox({ store: new MemoryStore(), fetch });

    await expect(outbox.send("a", "/a", BODY)).rejects.toMatchObject({ status: 400 });
    await expect(outbox.send("b", "/b", BODY)).rejects.toMatchObject({ status: 404 });
  });

  test("it re-sends what an earlier page left in the store after a reload", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { name } = await freshIdb();
    const firstPage = new Outbox({
      store: await IndexedDbStore.open(indexedDB, name),
      fetch: scriptedFetch(new TypeError("offline")).fetch,
      baseDelayMs: 60_000,
    });
    void firstPage.send("t/responses/4", "/api/v1/sessions/t/responses/4", BODY);
    await vi.waitFor(() => expect(firstPage.size).toBe(1));
    await vi.advanceTimersByTimeAsync(10);

    const delivered: string[] = [];
    const { fetch, calls } = scriptedFetch(json(200, { trial_index: 4 }));
    const reloaded = new Outbox({
      store: await IndexedDbStore.open(indexedDB, name),
      fetch,
      onDelivered: (entry) => delivered.push(entry.key),
    });
    expect(await reloaded.resume()).toBe(1);
    await reloaded.waitUntilEmpty();

    expect(calls[0].url).toBe("/api/v1/sessions/t/responses/4");
    expect(calls[0].init.body).toBe(JSON.stringify(BODY));
    expect(delivered).toEqual(["t/responses/4"]);
    const store = await IndexedDbStore.open(indexedDB, name);
    await vi.waitFor(async () => expect(await store.all()).toEqual([]));
  });

  test("waitUntilEmpty resolves only once every answer is acknowledged", async () => {
    let release: (reply: Response) => void = () => {};
    const { fetch } = scriptedFetch(
      json(201, {}),
      () => new Promise<Response>((resolve) => (release = resolve)),
    );
    const outbox = new Outbox({ store: new MemoryStore(), fetch });
    let empty = false;

    void outbox.send("a", "/a", BODY);
    void outbox.send("b", "/b", BODY);
    void outbox.waitUntilEmpty().then(() => (empty = true));
    await vi.waitFor(() => expect(outbox.size).toBe(1));
    expect(empty).toBe(false);
    release(json(201, {}));

    await vi.waitFor(() => expect(empty).toBe(true));
  });

  test("flush sends waiting answers at once with keepalive", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { fetch, calls } = scriptedFetch(new TypeError("offline"), json(201, {}));
    const outbox = new Outbox({ store: new MemoryStore(), fetch, baseDelayMs: 60_000 });
    const stop = outbox.listen(window);

    const ack = outbox.send("k", "/k", { ...BODY, raw: { big: "x".repeat(40_000) } });
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0].init.keepalive).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    window.dispatchEvent(new Event("pagehide"));

    await expect(ack).resolves.toEqual({});
    expect(calls[1].init.keepalive).toBe(true);
    stop();
  });
});

describe.each<[string, () => OutboxStore]>([
  ["LocalStorageStore", () => new LocalStorageStore(window.localStorage)],
  ["MemoryStore", () => new MemoryStore()],
])("%s", (_name, makeStore) => {
  test("it keeps one entry per key and deletes it", async () => {
    const store = makeStore();
    const entry = { key: "k", url: "/k", body: "{}", created_at: "2026-01-01T00:00:00Z" };

    await store.put(entry);
    await store.put({ ...entry, body: '{"a":1}' });
    expect(await store.all()).toEqual([{ ...entry, body: '{"a":1}' }]);
    await store.delete("k");

    await vi.waitFor(async () => expect(await store.all()).toEqual([]));
  });
});

describe("openOutboxStore", () => {
  test("it uses IndexedDB where the browser has it", async () => {
    expect(await openOutboxStore(indexedDB)).toBeInstanceOf(IndexedDbStore);
  });

  test("it falls back to localStorage when IndexedDB never answers", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    vi.spyOn(console, "warn").mockImplementation(() => {});
    // Some browsers return a request that fires no event at all (seen in headless Chromium).
    const silent = { open: () => ({}) as IDBOpenDBRequest } as unknown as IDBFactory;

    const opened = openOutboxStore(silent);
    await vi.advanceTimersByTimeAsync(3000);

    expect(await opened).toBeInstanceOf(LocalStorageStore);
    vi.useRealTimers();
  });

  test("it falls back to localStorage when IndexedDB is missing", async () => {
    expect(await openOutboxStore(null)).toBeInstanceOf(LocalStorageStore);
  });

  test("it keeps answers in memory where a frame may not touch storage at all", async () => {
    // A third-party iframe (MTurk's ExternalQuestion) whose browser blocks its storage: even
    // reading window.localStorage throws.
    const descriptor = Object.getOwnPropertyDescriptor(window, "localStorage")!;
    Object.defineProperty(window, "localStorage", {
      configurable: true,
      get: () => {
        throw new DOMException("Access is denied for this document.", "SecurityError");
      },
    });
    try {
      expect(await openOutboxStore(null)).toBeInstanceOf(MemoryStore);
    } finally {
      Object.defineProperty(window, "localStorage", descriptor);
    }
  });
});
