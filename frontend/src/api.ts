/**
 * The participant API as the page sees it (docs/participant-api.md): the payload types and the
 * few calls that are not responses. Responses go through the outbox (outbox.ts), never here.
 */

export type Paradigm = "reference_choice" | "occlusion_choice" | "description_choice";

export interface StudyTiming {
  lockout_ms: number;
  feedback_delay_ms: number;
  feedback_duration_ms: number;
}

export interface Study {
  slug: string;
  title: string;
  paradigm: Paradigm;
  consent_html: string;
  instructions_html: string;
  min_instruction_seconds: number;
  min_window: { width: number; height: number };
  fullscreen: boolean;
  question: string;
  timing: StudyTiming;
  feedback: boolean;
  show_counter: boolean;
  /** After each block, how many of its trials were answered correctly (absent: no). */
  block_feedback?: boolean;
  break_every: number;
  image_size_px: number;
  preload_ahead: number;
}

/** What the page checks before a session starts (§0): nothing is held for a visit that fails. */
export interface Requirements {
  slug: string;
  title: string;
  platform: "prolific" | "mturk" | "link";
  min_window: { width: number; height: number };
  fullscreen: boolean;
}

/** Why the page ends a session it cannot run (§7). */
export type EndReason = "window_too_small";

/** One trial as served: opaque image URLs, never the answer key. */
export interface Trial {
  index: number;
  kind: Paradigm;
  block: number;
  references: { left: string[]; right: string[] };
  left_label?: string;
  right_label?: string;
  queries: [string, string];
  /** occlusion_choice only: the unoccluded image. */
  base?: string;
  /** description_choice only: the unit's description (the same whichever query is right). */
  description?: string;
}

export interface Completion {
  completion_code: string;
  redirect_url: string | null;
  mturk_form: { action: string; fields: Record<string, string> } | null;
  message: string;
}

/** One practice block of the session: where it comes and how far the participant got. */
export interface PracticeBlockState {
  /** The `block` of this block's practice trials. */
  block: number;
  /** Index of the first main trial after the block. */
  before: number;
  size: number;
  /** Rounds started so far. */
  attempts: number;
  passed: boolean;
}

export interface SessionState {
  next_trial_index: number;
  correct_count: number | null;
  n_trials: number;
  practice_passed: boolean;
  practice_attempts: number;
  /** Absent from older servers: then all practice is one block before the first trial. */
  practice_blocks?: PracticeBlockState[];
  /** Only where the design scores each block: answers stored per block before this page load. */
  block_scores?: Array<{ block: number; answered: number; correct: number }>;
  completed: boolean;
  completion: Completion | null;
}

export interface SessionStart {
  token: string;
  study: Study;
  practice: Trial[];
  trials: Trial[];
  state: SessionState;
}

/** The body of §3 and §4: one answer. */
export interface ResponseBody {
  choice: 0 | 1;
  confidence: 1 | 2 | 3;
  rt_ms: number;
  /** Absent when the page does not know it; never a string that is not a time. */
  client_started_at?: string;
  client_answered_at: string;
  raw: Record<string, unknown>;
}

/** What §3 and §4 answer; every field is optional because the design decides what is shown. */
export interface ResponseAnswer {
  trial_index?: number;
  correct_count?: number;
  next_trial_index?: number;
  feedback?: { correct: boolean };
  attempt?: number;
}

export interface BrowserInfo {
  user_agent: string;
  screen_w: number;
  screen_h: number;
  window_w: number;
  window_h: number;
  pixel_ratio: number;
  touch: boolean;
  language: string;
}

/** A 4xx/5xx with the server's JSON error, or status 0 when the network failed. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** True where trying again may help: the network, a 5xx, a 429. */
  get retryable(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 429;
  }
}

const API = "/api/v1";

export const urls = {
  requirements: (slug: string) => `${API}/studies/${encodeURIComponent(slug)}/requirements`,
  sessions: (slug: string) => `${API}/studies/${encodeURIComponent(slug)}/sessions`,
  response: (token: string, index: number) => `${API}/sessions/${token}/responses/${index}`,
  responseShown: (token: string, index: number) =>
    `${API}/sessions/${token}/responses/${index}/shown`,
  practice: (token: string, attempt: number, index: number) =>
    `${API}/sessions/${token}/practice/${attempt}/${index}`,
  practiceShown: (token: string, attempt: number, index: number) =>
    `${API}/sessions/${token}/practice/${attempt}/${index}/shown`,
  events: (token: string) => `${API}/sessions/${token}/events`,
  end: (token: string) => `${API}/sessions/${token}/end`,
  complete: (token: string) => `${API}/sessions/${token}/complete`,
};

async function requestJson<T>(url: string, init: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      ...init,
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch (error) {
    throw new ApiError(0, "network", "The connection to the server failed.");
  }
  if (response.ok) {
    return (await response.json()) as T;
  }
  throw await errorFrom(response);
}

function postJson<T>(url: string, body: unknown): Promise<T> {
  return requestJson<T>(url, { method: "POST", body: JSON.stringify(body) });
}

/** §0: the study's requirements, read before any session exists. */
export function fetchRequirements(slug: string): Promise<Requirements> {
  return requestJson<Requirements>(urls.requirements(slug), { method: "GET" });
}

/** §7: ends the session (its task list goes to the next participant at once). */
export function endSession(token: string, reason: EndReason): Promise<unknown> {
  return postJson(urls.end(token), { reason });
}

/** The body of §3b and §4b: what the page showed after an answer. */
export interface FeedbackShownBody {
  feedback_shown: boolean;
  correct: boolean | null;
}

/** Reads the contract's `{"error", "message"}` body, tolerating a proxy's HTML error page. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `The server answered ${response.status}.`;
  try {
    const body = (await response.json()) as { error?: string; message?: string };
    code = body.error ?? code;
    message = body.message ?? message;
  } catch {
    // Not JSON (a proxy or gateway page): keep the generic message.
  }
  return new ApiError(response.status, code, message);
}

/** A token's shape as the server issues it (the URL converter's pattern). */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,64}$/;

/**
 * §1. `token` (plain link and pilot): the token this browser stored for the study, so that a
 * reload resumes the same session; the server ignores it for platform identities.
 */
export function startSession(
  slug: string,
  platform: Record<string, string>,
  browser: BrowserInfo,
  token: string | null = null,
): Promise<SessionStart> {
  const resume = token !== null && TOKEN_SHAPE.test(token) ? { token } : {};
  return postJson<SessionStart>(urls.sessions(slug), { platform, browser, ...resume });
}

/** Where a browser keeps its session token per study slug (localStorage in the page). */
export type TokenStorage = Pick<Storage, "getItem" | "setItem" | "removeItem">;

export function tokenKey(slug: string): string {
  return `psylens:session:${slug}`;
}

/** Storage can be missing or refuse (private windows, full quota): resuming is then lost. */
function safely<T>(action: () => T, fallback: T): T {
  try {
    return action();
  } catch {
    return fallback;
  }
}

/**
 * Starts the session, or resumes the one whose token this browser stored for `slug`, and
 * stores the token the server answers. A stored session that expired is forgotten, so that
 * the next attempt starts afresh.
 */
export async function startOrResume(
  slug: string,
  platform: Record<string, string>,
  browser: BrowserInfo,
  storage: TokenStorage | null,
): Promise<SessionStart> {
  const key = tokenKey(slug);
  const stored = storage ? safely(() => storage.getItem(key), null) : null;
  try {
    const session = await startSession(slug, platform, browser, stored);
    if (storage) safely(() => storage.setItem(key, session.token), undefined);
    return session;
  } catch (error) {
    if (storage && error instanceof ApiError && error.code === "session_expired") {
      safely(() => storage.removeItem(key), undefined);
    }
    throw error;
  }
}

export function completeSession(token: string): Promise<Completion> {
  return postJson<Completion>(urls.complete(token), {});
}
