/**
 * The participant page's entry point (served at /s/<slug>/): check the window against the study's
 * requirements (before any session exists, so a visit that cannot take part holds no task list),
 * start or resume the session, run the jsPsych timeline, then finish through the end screen.
 * Pending answers from an earlier page are re-sent before anything else.
 */
import "jspsych/css/jspsych.css";
import "./styles.css";

import { initJsPsych } from "jspsych";

import {
  ApiError,
  type Requirements,
  type SessionStart,
  endSession,
  fetchRequirements,
  startOrResume,
  tokenKey,
  urls,
} from "./api";
import { finishSession, handOff } from "./completion";
import { EventLog } from "./events";
import { Outbox, type PermanentFailure } from "./outbox";
import { openOutboxStore } from "./outbox-store";
import { showMessage, showRetry } from "./pages";
import { browserInfo, isMturkPreview, platformParams, slugFromPath } from "./platform";
import { checkWindow, tooSmallMessage } from "./screen-check";
import { buildTimeline, feedbackOf } from "./timeline";

const TITLES: Record<string, string> = {
  study_not_live: "This study is not open",
  study_full: "This study is full",
  identity_excluded: "You cannot take part in this study",
  already_completed: "You have already completed this study",
};

function warnBeforeLeaving(event: BeforeUnloadEvent): void {
  event.preventDefault();
}

function pageStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null; // storage blocked: the session still runs, a reload starts a new one
  }
}

/** Shows a 4xx as a message page; anything that may pass as a retry page calling `retry`. */
function showFailure(root: HTMLElement, error: unknown, retry: () => void): void {
  if (error instanceof ApiError && !error.retryable) {
    const title = TITLES[error.code] ?? (error.status === 404 ? "Study not found" : "Sorry");
    showMessage(root, title, error.message);
  } else {
    showRetry(root, "We could not reach the server. Check your connection.", retry);
  }
}

/** The study's requirements (§0), retried on network failures; never resolves after a 4xx. */
function loadRequirements(root: HTMLElement, slug: string) {
  return new Promise<Requirements>((resolve) => {
    const attempt = () => {
      showMessage(root, "Loading…", "Preparing the study.");
      fetchRequirements(slug).then(resolve, (error: unknown) => showFailure(root, error, attempt));
    };
    attempt();
  });
}

/**
 * The window cannot be made large enough: the study's own message, and a session this browser
 * already holds (a reload on a smaller screen) is ended so that its list goes to someone else.
 */
async function screenedOut(root: HTMLElement, requirements: Requirements): Promise<void> {
  showMessage(root, "This study needs a larger screen", tooSmallMessage(requirements));
  let stored: string | null = null;
  try {
    stored = pageStorage()?.getItem(tokenKey(requirements.slug)) ?? null;
  } catch {
    return; // storage refused: this browser holds no session it could end
  }
  if (stored === null) return;
  for (const delay of [0, 1000, 4000]) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    try {
      await endSession(stored, "window_too_small");
      return;
    } catch (error) {
      if (error instanceof ApiError && !error.retryable) return; // unknown or gone: nothing held
    }
  }
}

/**
 * Starts the session (or resumes the one whose token this browser stored for the study),
 * showing a message page (4xx) or a retry page (network, 5xx) on failure.
 */
function openSession(root: HTMLElement, slug: string, platform: Record<string, string>) {
  return new Promise<SessionStart>((resolve) => {
    const attempt = () => {
      showMessage(root, "Loading…", "Preparing the study.");
      startOrResume(slug, platform, browserInfo(), pageStorage()).then(resolve, (error: unknown) =>
        showFailure(root, error, attempt),
      );
    };
    attempt();
  });
}

/** What the outbox's callbacks need to reach while the experiment runs. */
interface AppState {
  correctCount: number;
  /** Set when the session is gone (404 on an answer): the experiment stops with this message. */
  fatal: string | null;
  abort: ((message: string) => void) | null;
}

async function runExperiment(
  root: HTMLElement,
  session: SessionStart,
  outbox: Outbox,
  app: AppState,
) {
  const events = new EventLog(urls.events(session.token));
  events.listen(window);
  root.replaceChildren(); // jsPsych appends to the display element; drop the loading page.
  const jsPsych = initJsPsych({
    display_element: root,
    show_progress_bar: true,
    auto_update_progress_bar: false,
    message_progress_bar: "Progress",
  });
  app.abort = (message) => {
    const p = document.createElement("p");
    p.textContent = message;
    jsPsych.abortExperiment(p.outerHTML);
  };
  window.addEventListener("beforeunload", warnBeforeLeaving);
  try {
    await jsPsych.run(buildTimeline({ jsPsych, session, outbox, events, progress: app }));
  } finally {
    window.removeEventListener("beforeunload", warnBeforeLeaving);
    app.abort = null;
  }
  if (app.fatal !== null) return showMessage(root, "Session ended", app.fatal);
  root.replaceChildren();
  document.getElementById("jspsych-progressbar-container")?.remove();
  if (document.fullscreenElement) await document.exitFullscreen().catch(() => undefined);
  await finishSession({ root, token: session.token, outbox, events });
}

async function boot(): Promise<void> {
  const root = document.getElementById("app") ?? document.body;
  const slug = slugFromPath(window.location.pathname);
  const platform = platformParams(window.location.search);
  if (!slug) return showMessage(root, "Link not valid", "This study link is incomplete.");
  if (isMturkPreview(platform)) {
    return showMessage(root, "Preview", "Please accept the HIT to begin the study.");
  }
  const app: AppState = { correctCount: 0, fatal: null, abort: null };
  const outbox = new Outbox({
    store: await openOutboxStore(),
    onDelivered: (_entry, ack) => {
      const count = feedbackOf(ack).correct_count;
      if (typeof count === "number") app.correctCount = Math.max(app.correctCount, count);
    },
    onPermanentFailure: (failure: PermanentFailure) => {
      console.error("answer refused by the server", failure.status, failure.code, failure.message);
      // 404: the session is gone, so nothing more can be stored; say so rather than carry on.
      // A 409 means the server already holds an answer for that trial: nothing to do.
      if (failure.status === 404 && app.fatal === null) {
        app.fatal = failure.message;
        app.abort?.(failure.message);
      }
    },
  });
  outbox.listen(window);
  await outbox.resume();
  const requirements = await loadRequirements(root, slug);
  if ((await checkWindow(root, requirements)) === "gave_up") {
    return screenedOut(root, requirements);
  }
  const session = await openSession(root, slug, platform);
  if (session.state.completed && session.state.completion) {
    return handOff(root, session.state.completion);
  }
  app.correctCount = session.state.correct_count ?? 0;
  await runExperiment(root, session, outbox, app);
}

void boot();
