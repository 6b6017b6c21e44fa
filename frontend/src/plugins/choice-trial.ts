/**
 * What reference-choice and occlusion-choice share: the two queries one above the other, each with
 * three confidence buttons (2 × 3), the lockout, the keyboard mapping, the server-scored feedback
 * and the trial data. Each plugin only builds the rest of its stage (references, base image).
 *
 * A trial appears only once every one of its images is decoded: until then the stage stays
 * hidden (no button can be pressed), the page says it is waiting for the connection, and failed
 * images are fetched again with a growing delay (at once when the browser comes back online).
 *
 * Keyboard (keys follow the buttons left to right):
 *   top query (choice 0):    1 = guess, 2 = probably, 3 = sure
 *   bottom query (choice 1): 8 = guess, 9 = probably, 0 = sure
 * The key hints are hidden on touch screens until the participant presses one of these keys.
 */
import { type JsPsych, ParameterType, type PluginInfo, type TrialType } from "jspsych";

export type Choice = 0 | 1;
export type Confidence = 1 | 2 | 3;

/** What `on_response` resolves to: the server's scoring where the design gives feedback. */
export interface ResponseFeedback {
  correct?: boolean;
  correct_count?: number;
}

export type OnResponse = (
  choice: Choice,
  confidence: Confidence,
  rt: number,
  data: Record<string, unknown>,
) => Promise<ResponseFeedback | null | undefined>;

/** Called when the feedback appears, with the verdict shown (the answer was sent before it). */
export type OnFeedbackShown = (correct: boolean) => void;

/** Resolves once the image can be drawn; rejects when it failed to load or decode. */
export type DecodeImage = (img: HTMLImageElement) => Promise<void>;

/** The browser's decoder: HTMLImageElement.decode(), or the load event where it is missing. */
export const decodeImage: DecodeImage = (img) => {
  if (typeof img.decode === "function") return img.decode();
  if (img.complete && img.naturalWidth > 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    img.addEventListener("load", () => resolve(), { once: true });
    img.addEventListener("error", () => reject(new Error("image failed")), { once: true });
  });
};

/** Longest wait between two tries of a failed image. */
export const MAX_IMAGE_RETRY_MS = 8000;

/** Key → [choice, confidence]. */
export const CHOICE_KEYS: Readonly<Record<string, readonly [Choice, Confidence]>> = {
  "1": [0, 1],
  "2": [0, 2],
  "3": [0, 3],
  "8": [1, 1],
  "9": [1, 2],
  "0": [1, 3],
};

export const CONFIDENCE_LABELS: Readonly<Record<Confidence, string>> = {
  1: "Guess",
  2: "Probably",
  3: "Sure",
};

const CONFIDENCES: readonly Confidence[] = [1, 2, 3];

/** Parameters both plugins take; each plugin adds its stage's own. */
export const choiceParameters = {
  /** The two query images: index 0 is shown on top, 1 below. */
  queries: { type: ParameterType.IMAGE, array: true, default: undefined },
  /** The question shown above the stage. */
  question: { type: ParameterType.HTML_STRING, default: "Which image is the right one?" },
  /** The confidence buttons and keys are disabled this long after the images are shown. */
  lockout_ms: { type: ParameterType.INT, default: 1500 },
  /** Wait between the answer and the feedback (or the end of the trial when there is none). */
  feedback_delay_ms: { type: ParameterType.INT, default: 350 },
  /** How long the feedback stays on screen. */
  feedback_duration_ms: { type: ParameterType.INT, default: 1150 },
  /** Show the server's verdict (it must arrive within feedback_delay_ms, else none is shown). */
  show_feedback: { type: ParameterType.BOOL, default: true },
  /** Called once with (choice, confidence, rt, data) on the answer; resolves to the feedback. */
  on_response: { type: ParameterType.FUNCTION, default: null },
  /** Correct answers so far, shown as a running counter; null hides the counter. */
  counter: { type: ParameterType.INT, default: null },
  /** Called once when the feedback appears (see OnFeedbackShown); null: nobody is told. */
  on_feedback_shown: { type: ParameterType.FUNCTION, default: null },
  /** CSS size (px) of every image; smaller screens scale it down. */
  image_size_px: { type: ParameterType.INT, default: 100 },
  /** Decodes one image (see DecodeImage); null: the browser's own decoder. */
  decode_image: { type: ParameterType.FUNCTION, default: null },
  /** How long the trial waits for its images before it says it is waiting for them. */
  waiting_message_ms: { type: ParameterType.INT, default: 1000 },
  /** Delay before a failed image is fetched again; doubles on each failure up to 8 s. */
  image_retry_ms: { type: ParameterType.INT, default: 1000 },
  /** A line above the question, e.g. "Practice trial 2 of 5"; null shows none. */
  label: { type: ParameterType.HTML_STRING, default: null },
  /** The server's index of this trial (main: §3 index; practice: index within the block). */
  study_trial_index: { type: ParameterType.INT, default: null },
  /** True for a practice trial. */
  practice: { type: ParameterType.BOOL, default: false },
  /** Practice attempt number (1, 2, …); null for main trials. */
  attempt: { type: ParameterType.INT, default: null },
} as const;

/** Data fields both plugins record. */
export const choiceData = {
  /** Chosen query: 0 = top, 1 = bottom. */
  choice: { type: ParameterType.INT },
  /** Confidence: 1 = guess, 2 = probably, 3 = sure. */
  confidence: { type: ParameterType.INT },
  /** Response time (ms) from the images being shown to the answer. */
  rt: { type: ParameterType.FLOAT },
  /** "keyboard", or the pointer that clicked: "mouse", "touch", "pen". */
  response_device: { type: ParameterType.STRING },
  /** The server's trial index (jsPsych's own `trial_index` counts every timeline trial). */
  study_trial_index: { type: ParameterType.INT },
  /** True for a practice trial. */
  practice: { type: ParameterType.BOOL },
  /** Practice attempt number, null for main trials. */
  attempt: { type: ParameterType.INT },
  /** The query image URLs, top first. */
  queries: { type: ParameterType.IMAGE, array: true },
  /** Client clock (ISO) when the images were shown. */
  client_started_at: { type: ParameterType.STRING },
  /** Client clock (ISO) at the answer. */
  client_answered_at: { type: ParameterType.STRING },
  /** Time (ms) from the trial's start until all its images were decoded and it appeared. */
  load_ms: { type: ParameterType.FLOAT },
  /** Number of images the trial showed. */
  images: { type: ParameterType.INT },
  /** Failed image loads that were fetched again before the trial appeared. */
  image_retries: { type: ParameterType.INT },
  /** True: every image was decoded before the trial appeared (an answer needs it). */
  images_loaded: { type: ParameterType.BOOL },
  /** The verdict shown as feedback; null when none was shown (the answer's own data, sent
   * before the verdict, has null: on_feedback_shown reports it). */
  correct: { type: ParameterType.BOOL },
  /** Whether feedback was shown (false in the answer's own data; see `correct`). */
  feedback_shown: { type: ParameterType.BOOL },
} as const;

/**
 * A plugin's parameters as trial() receives them: jsPsych has filled every default, so nothing
 * is undefined any more (TrialType is the caller's view, where defaulted ones are optional).
 */
export type Resolved<I extends PluginInfo> = Required<TrialType<I>>;

type ChoiceInfo = { name: "choice-trial"; parameters: typeof choiceParameters };
type Nullable =
  | "counter"
  | "attempt"
  | "study_trial_index"
  | "on_response"
  | "on_feedback_shown"
  | "decode_image"
  | "label";
export type ChoiceTrial = Omit<Resolved<ChoiceInfo>, Nullable> & {
  counter: number | null;
  attempt: number | null;
  study_trial_index: number | null;
  on_response: OnResponse | null;
  on_feedback_shown: OnFeedbackShown | null;
  decode_image: DecodeImage | null;
  label: string | null;
};

export interface ChoiceResponse {
  choice: Choice;
  confidence: Confidence;
  device: string;
}

/** Makes an <img> at the trial's fixed CSS size. No alt text that could hint at the answer. */
export function imageElement(url: string, className: string): HTMLImageElement {
  const img = document.createElement("img");
  img.className = `pl-img ${className}`;
  img.src = url;
  img.alt = "";
  img.draggable = false;
  return img;
}

/** A labelled grid of reference images; null when there are none (e.g. max-only designs). */
export function referenceGrid(urls: string[], label: string, side: string): HTMLElement | null {
  if (urls.length === 0) return null;
  const section = document.createElement("section");
  section.className = `pl-refs pl-refs-${side}`;
  const heading = document.createElement("h2");
  heading.className = "pl-refs-label";
  heading.textContent = label;
  const grid = document.createElement("div");
  grid.className = "pl-grid";
  grid.style.setProperty("--pl-cols", String(Math.ceil(Math.sqrt(urls.length))));
  for (const url of urls) grid.appendChild(imageElement(url, "pl-ref"));
  section.append(heading, grid);
  return section;
}

/** Set once the participant answers with a key: from then on the key hints show. */
let keyboardUsed = false;

/** Key hints help keyboard users; a touch screen (phone, tablet) hides them until a key is used. */
export function keyHintsWanted(win: Window = window): boolean {
  if (keyboardUsed) return true;
  const coarse =
    typeof win.matchMedia === "function" && win.matchMedia("(pointer: coarse)").matches;
  return !(coarse || (win.navigator.maxTouchPoints ?? 0) > 0);
}

/** Tests: forget that a key was used. */
export function resetKeyboardUse(): void {
  keyboardUsed = false;
}

function keyHint(choice: Choice, confidence: Confidence): string {
  const entry = Object.entries(CHOICE_KEYS).find(
    ([, [c, conf]]) => c === choice && conf === confidence,
  );
  return entry ? entry[0] : "";
}

function queryRow(url: string, choice: Choice): HTMLElement {
  const row = document.createElement("div");
  row.className = "pl-query";
  row.dataset.query = String(choice);
  row.appendChild(imageElement(url, "pl-query-img"));
  const buttons = document.createElement("div");
  buttons.className = "pl-confidence";
  for (const confidence of CONFIDENCES) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "pl-btn";
    button.disabled = true;
    button.dataset.choice = String(choice);
    button.dataset.confidence = String(confidence);
    const label = document.createElement("span");
    label.textContent = CONFIDENCE_LABELS[confidence];
    const key = document.createElement("kbd");
    key.className = "pl-key";
    key.textContent = keyHint(choice, confidence);
    button.append(label, key);
    buttons.appendChild(button);
  }
  row.appendChild(buttons);
  return row;
}

/** The centre column: the two queries, each with its three confidence buttons. */
export function queryColumn(queries: string[]): HTMLElement {
  const column = document.createElement("section");
  column.className = "pl-queries";
  column.append(queryRow(queries[0], 0), queryRow(queries[1], 1));
  return column;
}

interface ImageLoad {
  /** Resolves once every image of the trial is decoded. */
  done: Promise<void>;
  /** Failed loads fetched again so far. */
  retries: () => number;
  count: number;
}

/**
 * Decodes every image under `root`, fetching a failed one again after a growing delay (at once
 * when the browser comes back online), and shows `waiting` with the count while they are not
 * all there. Never gives up: the trial must not appear with an image missing.
 */
function loadImages(
  jsPsych: JsPsych,
  root: HTMLElement,
  trial: ChoiceTrial,
  waiting: HTMLElement,
): ImageLoad {
  const images = [...root.querySelectorAll<HTMLImageElement>("img")];
  const decode = trial.decode_image ?? decodeImage;
  let decoded = 0;
  let retries = 0;
  const wakers = new Set<() => void>();
  const wakeAll = () => wakers.forEach((wake) => wake());
  const say = () => {
    waiting.hidden = false;
    waiting.textContent =
      `Waiting for the connection: ${decoded} of ${images.length} images of this trial ` +
      "have arrived. The page keeps trying, and the trial starts as soon as they are all here.";
  };
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        wakers.delete(wake);
        resolve();
      };
      wakers.add(wake);
      jsPsych.pluginAPI.setTimeout(wake, ms);
    });
  const loadOne = async (img: HTMLImageElement) => {
    const url = img.getAttribute("src") ?? "";
    for (let failures = 0; ; failures++) {
      try {
        await decode(img);
        decoded += 1;
        if (!waiting.hidden) say();
        return;
      } catch {
        retries += 1;
        say();
        await pause(Math.min(trial.image_retry_ms * 2 ** failures, MAX_IMAGE_RETRY_MS));
        img.removeAttribute("src"); // setting the same URL again starts a new fetch
        img.src = url;
      }
    }
  };
  const slow = jsPsych.pluginAPI.setTimeout(() => {
    if (decoded < images.length) say();
  }, trial.waiting_message_ms);
  window.addEventListener("online", wakeAll);
  const done = Promise.all(images.map(loadOne)).then(() => {
    window.removeEventListener("online", wakeAll);
    clearTimeout(slow);
    waiting.hidden = true;
  });
  return { done, retries: () => retries, count: images.length };
}

function renderTrial(trial: ChoiceTrial, stage: HTMLElement): HTMLElement {
  const root = document.createElement("div");
  root.className = "pl-trial pl-loading";
  root.classList.toggle("pl-no-keys", !keyHintsWanted());
  root.style.setProperty("--pl-img", `${trial.image_size_px}px`);
  if (trial.label) {
    const label = document.createElement("p");
    label.className = "pl-label";
    label.innerHTML = trial.label;
    root.appendChild(label);
  }
  const question = document.createElement("p");
  question.className = "pl-question";
  question.innerHTML = trial.question;
  root.appendChild(question);
  if (trial.counter !== null && trial.counter !== undefined) {
    const counter = document.createElement("p");
    counter.className = "pl-counter";
    counter.innerHTML = `Correct so far: <strong>${trial.counter}</strong>`;
    root.appendChild(counter);
  }
  stage.classList.add("pl-stage");
  const feedback = document.createElement("p");
  feedback.className = "pl-feedback";
  feedback.setAttribute("aria-live", "polite");
  const waiting = document.createElement("p");
  waiting.className = "pl-waiting";
  waiting.setAttribute("role", "status");
  waiting.hidden = true;
  root.append(waiting, stage, feedback);
  return root;
}

/**
 * Runs one trial on `stage` (built by the plugin, holding `queryColumn(trial.queries)`), then
 * calls jsPsych.finishTrial with the shared data plus `extra_data`.
 */
export function runChoiceTrial(
  jsPsych: JsPsych,
  display: HTMLElement,
  trial: ChoiceTrial,
  stage: HTMLElement,
  extraData: Record<string, unknown> = {},
): { unlocked: Promise<void> } {
  const root = renderTrial(trial, stage);
  display.appendChild(root);
  const buttons = [...root.querySelectorAll<HTMLButtonElement>("button.pl-btn")];
  const loadStart = performance.now();
  const images = loadImages(jsPsych, root, trial, root.querySelector<HTMLElement>(".pl-waiting")!);
  let shownAt = 0;
  let clientStartedAt = "";
  let answered = false;
  let locked = true;
  let keyboardListener: unknown = null;
  let markUnlocked: () => void = () => {};
  const unlocked = new Promise<void>((resolve) => (markUnlocked = resolve));

  const show = () => {
    root.classList.remove("pl-loading");
    shownAt = performance.now();
    clientStartedAt = new Date().toISOString();
    jsPsych.pluginAPI.setTimeout(unlock, trial.lockout_ms);
  };

  const unlock = () => {
    if (answered) return;
    locked = false;
    buttons.forEach((button) => (button.disabled = false));
    keyboardListener = jsPsych.pluginAPI.getKeyboardResponse({
      callback_function: (info: { key: string }) => {
        const mapped = CHOICE_KEYS[info.key.toLowerCase()];
        if (!mapped) return;
        keyboardUsed = true;
        root.classList.remove("pl-no-keys");
        respond({ choice: mapped[0], confidence: mapped[1], device: "keyboard" });
      },
      valid_responses: Object.keys(CHOICE_KEYS),
      rt_method: "performance",
      persist: true,
      allow_held_key: false,
    });
    markUnlocked();
  };

  const respond = (response: ChoiceResponse) => {
    if (answered || locked) return;
    answered = true;
    const rt = Math.round((performance.now() - shownAt) * 10) / 10;
    if (keyboardListener) jsPsych.pluginAPI.cancelKeyboardResponse(keyboardListener as never);
    buttons.forEach((button) => (button.disabled = true));
    root
      .querySelector(`[data-choice="${response.choice}"][data-confidence="${response.confidence}"]`)
      ?.classList.add("pl-chosen");
    const data: Record<string, unknown> = {
      choice: response.choice,
      confidence: response.confidence,
      rt,
      response_device: response.device,
      study_trial_index: trial.study_trial_index,
      practice: trial.practice,
      attempt: trial.attempt,
      queries: [...trial.queries],
      client_started_at: clientStartedAt,
      client_answered_at: new Date().toISOString(),
      load_ms: Math.round((shownAt - loadStart) * 10) / 10,
      images: images.count,
      image_retries: images.retries(),
      images_loaded: true,
      correct: null,
      feedback_shown: false,
      ...extraData,
    };
    afterResponse(jsPsych, root, trial, data);
  };

  for (const button of buttons) {
    button.addEventListener("click", (event) => {
      const pointer = (event as PointerEvent).pointerType;
      respond({
        choice: Number(button.dataset.choice) as Choice,
        confidence: Number(button.dataset.confidence) as Confidence,
        device: pointer || "mouse",
      });
    });
  }

  void images.done.then(show);
  return { unlocked };
}

/** Asks for the server's verdict and shows it only if it is there within feedback_delay_ms. */
function afterResponse(
  jsPsych: JsPsych,
  root: HTMLElement,
  trial: ChoiceTrial,
  data: Record<string, unknown>,
): void {
  let verdict: ResponseFeedback | null = null;
  const onResponse = trial.on_response;
  if (onResponse) {
    Promise.resolve()
      .then(() =>
        onResponse(data.choice as Choice, data.confidence as Confidence, data.rt as number, data),
      )
      .then((answer) => (verdict = answer ?? null))
      .catch((error: unknown) => console.warn("on_response failed; no feedback shown", error));
  }
  const finish = () => jsPsych.finishTrial(data);
  jsPsych.pluginAPI.setTimeout(() => {
    if (!trial.show_feedback) return finish();
    if (verdict && typeof verdict.correct === "boolean") {
      data.correct = verdict.correct;
      data.feedback_shown = true;
      showFeedback(root, data.choice as Choice, verdict);
      reportFeedback(trial, verdict.correct);
    }
    // Same pacing whether or not the verdict came in time.
    jsPsych.pluginAPI.setTimeout(finish, trial.feedback_duration_ms);
  }, trial.feedback_delay_ms);
}

function reportFeedback(trial: ChoiceTrial, correct: boolean): void {
  try {
    trial.on_feedback_shown?.(correct);
  } catch (error) {
    console.warn("on_feedback_shown failed", error);
  }
}

function showFeedback(root: HTMLElement, choice: Choice, verdict: ResponseFeedback): void {
  const correct = verdict.correct === true;
  root
    .querySelector(`.pl-query[data-query="${choice}"]`)
    ?.classList.add(correct ? "pl-correct" : "pl-wrong");
  const text = root.querySelector(".pl-feedback");
  if (text) {
    text.textContent = correct ? "Correct!" : "Wrong.";
    text.classList.add(correct ? "pl-feedback-correct" : "pl-feedback-wrong");
  }
  const counter = root.querySelector(".pl-counter strong");
  if (counter && typeof verdict.correct_count === "number") {
    counter.textContent = String(verdict.correct_count);
  } else if (counter && correct) {
    counter.textContent = String(Number(counter.textContent) + 1);
  }
}

/** Simulated answer: a random choice and confidence, answered after the lockout. */
function simulatedData(jsPsych: JsPsych, trial: ChoiceTrial, options: Record<string, unknown>) {
  const defaults = {
    choice: jsPsych.randomization.randomInt(0, 1),
    confidence: jsPsych.randomization.randomInt(1, 3),
    rt:
      trial.lockout_ms + Math.round(jsPsych.randomization.sampleExGaussian(600, 80, 1 / 200, true)),
    response_device: "keyboard",
    study_trial_index: trial.study_trial_index,
    practice: trial.practice,
    attempt: trial.attempt,
    queries: [...trial.queries],
    client_started_at: new Date().toISOString(),
    client_answered_at: new Date().toISOString(),
    load_ms: 0,
    images: 0,
    image_retries: 0,
    images_loaded: true,
    correct: null,
    feedback_shown: false,
  };
  return jsPsych.pluginAPI.mergeSimulationData(defaults, options) as Record<string, unknown>;
}

/**
 * simulate() for both plugins. data-only: calls on_response (so a simulated run still stores
 * its answers) and finishes at once. visual: runs the real trial and clicks the simulated button.
 */
export function simulateChoiceTrial(
  jsPsych: JsPsych,
  trial: ChoiceTrial,
  mode: "data-only" | "visual",
  options: Record<string, unknown>,
  loadCallback: () => void,
  runTrial: () => { unlocked: Promise<void> },
): void {
  const data = simulatedData(jsPsych, trial, options);
  if (mode === "data-only") {
    loadCallback();
    const onResponse = trial.on_response;
    if (onResponse) {
      void Promise.resolve()
        .then(() =>
          onResponse(data.choice as Choice, data.confidence as Confidence, data.rt as number, data),
        )
        .catch((error: unknown) => console.warn("on_response failed", error));
    }
    jsPsych.finishTrial(data);
    return;
  }
  const { unlocked } = runTrial();
  loadCallback();
  const button = jsPsych
    .getDisplayElement()
    .querySelector(`[data-choice="${data.choice}"][data-confidence="${data.confidence}"]`);
  // rt counts from the images being shown; the lockout is part of it.
  const afterUnlock = Math.max(0, Number(data.rt) - trial.lockout_ms);
  void unlocked.then(() => {
    if (button) jsPsych.pluginAPI.clickTarget(button, afterUnlock);
  });
}
