/**
 * Durable storage for the outbox: IndexedDB where the browser has it, localStorage where it does
 * not (some private modes), memory as the last resort. Every store keeps entries by key, so
 * writing the same response twice keeps one entry.
 */

/** One response waiting for the server's acknowledgement. */
export interface OutboxEntry {
  /** Unique per answer, e.g. `<token>/responses/12`: one entry per (session, trial). */
  key: string;
  /** Where it is PUT. */
  url: string;
  /** The JSON body, sent byte-for-byte the same on every try (the PUT is idempotent). */
  body: string;
  /** When the entry was written (ISO), for ordering re-sends after a reload. */
  created_at: string;
}

export interface OutboxStore {
  put(entry: OutboxEntry): Promise<void>;
  delete(key: string): Promise<void>;
  all(): Promise<OutboxEntry[]>;
}

const DB_NAME = "psylens-outbox";
/**
 * Some browsers leave an IndexedDB request without any event (iOS Safari bugs, some headless and
 * private modes): every operation gets a deadline so the page never waits on storage forever.
 */
const IDB_TIMEOUT_MS = 3000;
const OBJECT_STORE = "entries";
const LOCAL_PREFIX = "psylens-outbox:";

/** Rejects if `promise` has not settled after `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error: unknown) => (clearTimeout(timer), reject(error)),
    );
  });
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  const done = new Promise<T>((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return withDeadline(done, IDB_TIMEOUT_MS, "IndexedDB request");
}

function transactionDone(tx: IDBTransaction): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
  return withDeadline(done, IDB_TIMEOUT_MS, "IndexedDB transaction");
}

export class IndexedDbStore implements OutboxStore {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(factory: IDBFactory = indexedDB, name: string = DB_NAME) {
    const req = factory.open(name, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(OBJECT_STORE, { keyPath: "key" });
    };
    return new IndexedDbStore(await request(req));
  }

  /** Resolves once the write is committed, so a crash right after cannot lose it. */
  async put(entry: OutboxEntry): Promise<void> {
    const tx = this.db.transaction(OBJECT_STORE, "readwrite");
    tx.objectStore(OBJECT_STORE).put(entry);
    await transactionDone(tx);
  }

  async delete(key: string): Promise<void> {
    const tx = this.db.transaction(OBJECT_STORE, "readwrite");
    tx.objectStore(OBJECT_STORE).delete(key);
    await transactionDone(tx);
  }

  async all(): Promise<OutboxEntry[]> {
    const tx = this.db.transaction(OBJECT_STORE, "readonly");
    return request(tx.objectStore(OBJECT_STORE).getAll() as IDBRequest<OutboxEntry[]>);
  }
}

export class LocalStorageStore implements OutboxStore {
  constructor(private readonly storage: Storage = localStorage) {}

  async put(entry: OutboxEntry): Promise<void> {
    this.storage.setItem(LOCAL_PREFIX + entry.key, JSON.stringify(entry));
  }

  async delete(key: string): Promise<void> {
    this.storage.removeItem(LOCAL_PREFIX + key);
  }

  async all(): Promise<OutboxEntry[]> {
    const entries: OutboxEntry[] = [];
    for (let i = 0; i < this.storage.length; i++) {
      const name = this.storage.key(i);
      if (name?.startsWith(LOCAL_PREFIX)) {
        entries.push(JSON.parse(this.storage.getItem(name) ?? "null") as OutboxEntry);
      }
    }
    return entries.filter((entry) => entry !== null);
  }
}

/** Survives nothing; used only where the browser refuses both durable stores. */
export class MemoryStore implements OutboxStore {
  private readonly entries = new Map<string, OutboxEntry>();

  async put(entry: OutboxEntry): Promise<void> {
    this.entries.set(entry.key, { ...entry });
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async all(): Promise<OutboxEntry[]> {
    return [...this.entries.values()];
  }
}

function localStorageWorks(): boolean {
  try {
    const probe = `${LOCAL_PREFIX}probe`;
    localStorage.setItem(probe, "1");
    localStorage.removeItem(probe);
    return true;
  } catch {
    return false;
  }
}

/** The most durable store this browser allows. */
export async function openOutboxStore(
  factory: IDBFactory | null = globalThis.indexedDB ?? null,
): Promise<OutboxStore> {
  if (factory) {
    try {
      return await IndexedDbStore.open(factory);
    } catch (error) {
      // Refused or silent (private modes, old Safari): fall through to localStorage.
      console.warn("outbox: IndexedDB unavailable, using localStorage", error);
    }
  }
  // Inside a third-party frame (MTurk) a browser may refuse storage so strictly that merely
  // reading `localStorage` throws: localStorageWorks() catches that too.
  if (localStorageWorks()) {
    return new LocalStorageStore();
  }
  console.warn("outbox: no durable storage in this page; answers are kept in memory");
  return new MemoryStore();
}
