/**
 * The participant's timeline, built from the session the server returned: consent, fullscreen
 * (if the study asks), instructions with a minimum reading time, practice looped until an attempt
 * is all correct, then the main trials from where the session is (resume after a reload), with
 * breaks and a progress bar. (The window was checked before the session started: screen-check.ts.)
 * An empty consent or instructions text shows no page. Every answer goes through the outbox, and
 * so does what the page showed after it (the feedback's verdict, once it appeared).
 */
import CallFunctionPlugin from "@jspsych/plugin-call-function";
import FullscreenPlugin from "@jspsych/plugin-fullscreen";
import HtmlButtonResponsePlugin from "@jspsych/plugin-html-button-response";
import type { JsPsych } from "jspsych";

import {
  type FeedbackShownBody,
  type PracticeBlockState,
  type ResponseAnswer,
  type ResponseBody,
  type SessionStart,
  type Study,
  type Trial,
  urls,
} from "./api";
import type { EventLog } from "./events";
import type { Acknowledgement, Outbox } from "./outbox";
import type {
  Choice,
  Confidence,
  OnFeedbackShown,
  OnResponse,
  ResponseFeedback,
} from "./plugins/choice-trial";
import DescriptionChoicePlugin from "./plugins/description-choice";
import OcclusionChoicePlugin from "./plugins/occlusion-choice";
import ReferenceChoicePlugin from "./plugins/reference-choice";
import { ImagePreloader, type ImageLoader } from "./preload";

type TimelineNode = Record<string, unknown>;
/** What jsPsych.run() takes; jsPsych does not export the type by name. */
export type JsPsychTimeline = Extract<Parameters<JsPsych["run"]>[0], unknown[]>;

export interface ExperimentContext {
  jsPsych: JsPsych;
  session: SessionStart;
  outbox: Pick<Outbox, "send" | "pendingKeys">;
  events: Pick<EventLog, "record">;
  /** Correct answers so far, for the counter; the app raises it as acknowledgements arrive. */
  progress: { correctCount: number };
  /** Image loader for the preloader (tests pass a fake one). */
  imageLoader?: ImageLoader;
}

export function responseKey(token: string, index: number): string {
  return `${token}/responses/${index}`;
}

export function practiceKey(token: string, attempt: number, index: number): string {
  return `${token}/practice/${attempt}/${index}`;
}

/** Reports (through the outbox) that feedback with this verdict appeared after an answer. */
function feedbackReport(
  outbox: ExperimentContext["outbox"],
  answerKey: string,
  url: string,
): OnFeedbackShown {
  return (correct) => {
    const body: FeedbackShownBody = { feedback_shown: true, correct };
    outbox.send(`${answerKey}/shown`, url, body).catch(() => undefined);
  };
}

/**
 * Main trials still to do: from the server's next_trial_index, less those whose answer waits
 * in the outbox (answered before a reload, not yet acknowledged).
 */
export function remainingTrials(session: SessionStart, pendingKeys: string[]): Trial[] {
  const pending = new Set(pendingKeys);
  return [...session.trials]
    .sort((a, b) => a.index - b.index)
    .filter((trial) => trial.index >= session.state.next_trial_index)
    .filter((trial) => !pending.has(responseKey(session.token, trial.index)));
}

/** An ISO 8601 time the server accepts, from a Date or a time string; otherwise undefined. */
export function isoTime(value: unknown): string | undefined {
  if (!(value instanceof Date) && typeof value !== "string") return undefined;
  const time = value instanceof Date ? value.getTime() : Date.parse(value);
  if (!Number.isFinite(time)) return undefined;
  const iso = new Date(time).toISOString();
  return /^\d{4}-/.test(iso) ? iso : undefined; // years beyond 9999 are not ISO 8601 basic
}

/**
 * §3's body. A time the plugin did not record is left out (the server stores none) rather
 * than sent as "undefined", which the server would refuse for good; the answer time falls
 * back to now, when the answer is handed to the outbox.
 */
export function responseBody(
  choice: Choice,
  confidence: Confidence,
  rt: number,
  data: Record<string, unknown>,
): ResponseBody {
  const startedAt = isoTime(data.client_started_at);
  return {
    choice,
    confidence,
    rt_ms: rt,
    ...(startedAt === undefined ? {} : { client_started_at: startedAt }),
    client_answered_at: isoTime(data.client_answered_at) ?? new Date().toISOString(),
    raw: data,
  };
}

/** The feedback the plugin shows, from the server's acknowledgement. */
export function feedbackOf(ack: Acknowledgement): ResponseFeedback {
  const answer = ack as ResponseAnswer;
  return { correct: answer.feedback?.correct, correct_count: answer.correct_count };
}

function button(
  stimulus: string | (() => string),
  label: string,
  extra: TimelineNode = {},
): TimelineNode {
  return { type: HtmlButtonResponsePlugin, stimulus, choices: [label], ...extra };
}

/** One server trial as a plugin trial (parameters shared by practice and main). */
export function choiceTrial(study: Study, trial: Trial): TimelineNode {
  const common = {
    queries: trial.queries,
    question: study.question,
    lockout_ms: study.timing.lockout_ms,
    feedback_delay_ms: study.timing.feedback_delay_ms,
    feedback_duration_ms: study.timing.feedback_duration_ms,
    image_size_px: study.image_size_px,
    study_trial_index: trial.index,
  };
  if (trial.kind === "occlusion_choice") {
    return {
      type: OcclusionChoicePlugin,
      ...common,
      references: [...trial.references.left, ...trial.references.right],
      base: trial.base,
    };
  }
  if (trial.kind === "description_choice") {
    return {
      type: DescriptionChoicePlugin,
      ...common,
      description: trial.description ?? "",
      references_left: trial.references.left,
      references_right: trial.references.right,
      ...(trial.left_label ? { left_label: trial.left_label } : {}),
      ...(trial.right_label ? { right_label: trial.right_label } : {}),
    };
  }
  return {
    type: ReferenceChoicePlugin,
    ...common,
    references_left: trial.references.left,
    references_right: trial.references.right,
    ...(trial.left_label ? { left_label: trial.left_label } : {}),
    ...(trial.right_label ? { right_label: trial.right_label } : {}),
  };
}

/** A page shown only where its text has something in it (an empty one is skipped). */
function whenWritten(html: string, node: TimelineNode): TimelineNode {
  return { timeline: [node], conditional_function: () => html.trim() !== "" };
}

export function consentTrial(study: Study): TimelineNode {
  const stimulus =
    `<div class="pl-text">${study.consent_html}</div>` +
    `<label class="pl-consent"><input type="checkbox" id="pl-consent-box"> ` +
    `I have read the information above and agree to take part.</label>`;
  const page = button(stimulus, "Continue", {
    on_load: () => {
      const box = document.getElementById("pl-consent-box") as HTMLInputElement | null;
      const next = document.querySelector<HTMLButtonElement>(
        "#jspsych-html-button-response-btngroup button",
      );
      if (!box || !next) return;
      next.disabled = true;
      box.addEventListener("change", () => (next.disabled = !box.checked));
    },
    data: { psylens_stage: "consent" },
  });
  return whenWritten(study.consent_html, page);
}

export function fullscreenTrial(study: Study): TimelineNode {
  return {
    timeline: [
      {
        type: FullscreenPlugin,
        fullscreen_mode: true,
        message: "<p>The study runs in full screen so that nothing distracts from the images.</p>",
        button_label: "Switch to full screen",
      },
    ],
    // iPhones have no Fullscreen API: they skip this step rather than get stuck on it.
    conditional_function: () => study.fullscreen && document.fullscreenEnabled === true,
  };
}

export function instructionsTrial(study: Study, events: ExperimentContext["events"]): TimelineNode {
  const seconds = Math.max(0, study.min_instruction_seconds);
  const note = seconds > 0 ? `<p class="pl-note">The button unlocks after ${seconds} s.</p>` : "";
  const page = button(
    `<div class="pl-text">${study.instructions_html}</div>${note}`,
    "I have read the instructions",
    {
      enable_button_after: seconds * 1000,
      data: { psylens_stage: "instructions" },
      on_finish: (data: { rt: number }) => {
        events.record("instructions_read", { seconds: Math.round(data.rt / 100) / 10 });
      },
    },
  );
  return whenWritten(study.instructions_html, page);
}

/** The session's practice blocks, each with its trials; one block before the first trial when
 * the server does not say (older servers). */
export function practiceBlocks(
  session: SessionStart,
): Array<{ state: PracticeBlockState; trials: Trial[] }> {
  const { practice, state } = session;
  const states = state.practice_blocks ?? [
    {
      block: 0,
      before: 0,
      size: practice.length,
      attempts: state.practice_attempts,
      passed: state.practice_passed,
    },
  ];
  return states.map((block) => ({
    state: block,
    trials: state.practice_blocks ? practice.filter((t) => t.block === block.block) : practice,
  }));
}

/** Rounds (attempt 1, 2, …) of one practice block until every answer of a round is correct. */
export function practiceBlock(
  ctx: ExperimentContext,
  block: PracticeBlockState,
  practice: Trial[],
  first: boolean,
): TimelineNode | null {
  const { session, jsPsych, outbox } = ctx;
  const { study, token } = session;
  if (practice.length === 0 || block.passed) return null;
  let attempt = block.attempts;
  let verdicts: Array<Promise<boolean>> = [];
  let passed = false;
  let correct = 0;
  const preloader = new ImagePreloader(practice, study.preload_ahead, ctx.imageLoader);
  // The first block loads while the participant reads the instructions; a later one from its intro.
  if (first) preloader.advanceTo(0);

  const newRound = {
    type: CallFunctionPlugin,
    func: () => {
      attempt += 1;
      verdicts = [];
    },
  };
  const intro = button(
    () =>
      attempt === 1
        ? `<p>${first ? "First" : "Before the next part"}, ${practice.length} practice trials. After each you will see whether you were right.</p>`
        : `<p>Practice, round ${attempt}: let's try the practice trials again.</p>`,
    "Start practice",
    { data: { psylens_stage: "practice_intro" }, on_start: () => preloader.advanceTo(0) },
  );
  const trials = practice.map((trial, position) => ({
    ...choiceTrial(study, trial),
    on_start: () => preloader.advanceTo(position),
    practice: true,
    attempt: () => attempt,
    label: () =>
      `Practice trial ${position + 1} of ${practice.length}` +
      (attempt > 1 ? ` (round ${attempt})` : ""),
    show_feedback: true,
    // A function parameter is passed as it is (not evaluated per trial): it reads the round
    // when the feedback appears.
    on_feedback_shown: ((correct) =>
      feedbackReport(
        outbox,
        practiceKey(token, attempt, trial.index),
        urls.practiceShown(token, attempt, trial.index),
      )(correct)) satisfies OnFeedbackShown,
    on_response: ((choice, confidence, rt, data) => {
      const sent = outbox
        .send(
          practiceKey(token, attempt, trial.index),
          urls.practice(token, attempt, trial.index),
          responseBody(choice, confidence, rt, data),
        )
        .then(feedbackOf);
      verdicts.push(sent.then((f) => f.correct === true).catch(() => false));
      return sent;
    }) satisfies OnResponse,
  }));
  const check = {
    type: CallFunctionPlugin,
    async: true,
    func: (done: () => void) => {
      jsPsych.getDisplayElement().innerHTML = "<p>Checking your answers…</p>";
      void Promise.all(verdicts).then((results) => {
        correct = results.filter(Boolean).length;
        passed = correct === practice.length;
        done();
      });
    },
  };
  const summary = button(
    () =>
      passed
        ? "<p>All practice answers were right. Continue when you are ready.</p>"
        : `<p>${correct} of ${practice.length} practice answers were right. The practice repeats until all are right.</p>`,
    "Continue",
    { data: { psylens_stage: "practice_summary" } },
  );
  return { timeline: [newRound, intro, ...trials, check, summary], loop_function: () => !passed };
}

function breakTrial(done: number, total: number, score: () => string = () => ""): TimelineNode {
  return button(
    () =>
      `${score()}<p>Time for a short break. You have done ${done} of ${total} trials.</p><p>Continue when you are ready.</p>`,
    "Continue",
    { data: { psylens_stage: "break" } },
  );
}

/** How long the score after a block waits for the server to score the block's last answers. */
export const BLOCK_SCORE_WAIT_MS = 5000;

/**
 * The score after each block (Borowski et al. 2021: "You got X out of N trials correct"): the
 * answers stored before this page load (the server's `block_scores`) plus this load's
 * acknowledgements, waiting a little for those still on their way.
 */
export class BlockScores {
  private verdicts = new Map<number, Array<Promise<boolean | null>>>();

  constructor(
    private session: SessionStart,
    private waitMs = BLOCK_SCORE_WAIT_MS,
  ) {}

  record(block: number, ack: Promise<ResponseFeedback>): void {
    const verdict = ack.then((f) => (f.correct === undefined ? null : f.correct)).catch(() => null);
    this.verdicts.set(block, [...(this.verdicts.get(block) ?? []), verdict]);
  }

  /** A call-function node that waits for the block's verdicts and sets the text `text()` gives. */
  node(block: number, jsPsych: JsPsych): { wait: TimelineNode; text: () => string } {
    let text = "";
    const wait = {
      type: CallFunctionPlugin,
      async: true,
      func: (done: () => void) => {
        jsPsych.getDisplayElement().innerHTML = "<p>Saving your answers…</p>";
        void this.score(block).then((score) => {
          text = score;
          done();
        });
      },
    };
    return { wait, text: () => text };
  }

  async score(block: number): Promise<string> {
    const size = this.session.trials.filter((t) => t.block === block).length;
    const before = this.session.state.block_scores?.find((s) => s.block === block);
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), this.waitMs));
    const verdicts = await Promise.all(
      (this.verdicts.get(block) ?? []).map((v) => Promise.race([v, timeout])),
    );
    const known = verdicts.filter((v): v is boolean => v !== null);
    const correct = (before?.correct ?? 0) + known.filter(Boolean).length;
    const answered = (before?.answered ?? 0) + known.length;
    if (answered >= size)
      return `<p class="pl-score">You got ${correct} out of ${size} trials correct.</p>`;
    return `<p class="pl-score">You got ${correct} out of the ${answered} trials scored so far correct (${size} in the block; the rest are still being saved).</p>`;
  }
}

/** Marks on <body> how many images the main block's preloader still waits for. */
function markPreloading(pending: number): void {
  if (typeof document !== "undefined") document.body.dataset.plPreloading = String(pending);
}

/**
 * The main trials still to do, with the progress bar, a break every `break_every` trials and
 * between blocks, and the practice blocks in `practiceBefore` (main trial index → node) just
 * before the first remaining trial at or after that index.
 */
export function mainBlock(
  ctx: ExperimentContext,
  remaining: Trial[],
  practiceBefore: Array<[number, TimelineNode]> = [],
): TimelineNode[] {
  const { session, jsPsych, outbox } = ctx;
  const { study, token } = session;
  const total = session.state.n_trials || session.trials.length;
  let done = total - remaining.length;
  // The page says how many images are still on their way (`data-pl-preloading` on <body>):
  // what a participant going offline now can still see is what has arrived.
  const preloader = new ImagePreloader(
    remaining,
    study.preload_ahead,
    ctx.imageLoader,
    undefined,
    markPreloading,
  );
  const scores = new BlockScores(session);
  const setProgress = () => {
    if (jsPsych.progressBar) jsPsych.progressBar.progress = total > 0 ? done / total : 1;
  };
  // Start loading the first trials now, while the participant reads consent and instructions.
  preloader.advanceTo(0);
  const nodes: TimelineNode[] = [{ type: CallFunctionPlugin, func: setProgress }];
  const pending = [...practiceBefore].sort(([a], [b]) => a - b);
  const practiceUpTo = (index: number): TimelineNode[] => {
    const due: TimelineNode[] = [];
    while (pending.length > 0 && pending[0][0] <= index) due.push(pending.shift()![1]);
    return due;
  };
  remaining.forEach((trial, position) => {
    nodes.push(...practiceUpTo(trial.index));
    nodes.push({
      ...choiceTrial(study, trial),
      show_feedback: study.feedback,
      on_feedback_shown: feedbackReport(
        outbox,
        responseKey(token, trial.index),
        urls.responseShown(token, trial.index),
      ),
      counter: () => (study.show_counter ? ctx.progress.correctCount : null),
      on_start: () => preloader.advanceTo(position),
      on_response: ((choice, confidence, rt, data) => {
        const sent = outbox
          .send(
            responseKey(token, trial.index),
            urls.response(token, trial.index),
            responseBody(choice, confidence, rt, data),
          )
          .then(feedbackOf);
        if (study.block_feedback) scores.record(trial.block, sent);
        return sent;
      }) satisfies OnResponse,
      on_finish: () => {
        done += 1;
        setProgress();
      },
    });
    const next = remaining[position + 1];
    if (next === undefined) return;
    const everyN = study.break_every > 0 && (trial.index + 1) % study.break_every === 0;
    const practiceNext = pending.length > 0 && pending[0][0] <= next.index;
    const blockEnds = next.block !== trial.block;
    if (blockEnds && study.block_feedback) {
      const { wait, text } = scores.node(trial.block, jsPsych);
      nodes.push(wait, breakTrial(trial.index + 1, total, text));
    } else if ((everyN || blockEnds) && !practiceNext) {
      nodes.push(breakTrial(trial.index + 1, total));
    }
  });
  return nodes;
}

/** A session that has answered anything has been through consent and instructions already. */
export function isResuming(session: SessionStart, pendingKeys: string[]): boolean {
  const answeredHere = pendingKeys.some((key) => key.startsWith(`${session.token}/`));
  return session.state.next_trial_index > 0 || session.state.practice_attempts > 0 || answeredHere;
}

function welcomeBackTrial(): TimelineNode {
  return button("<p>Welcome back. You will continue where you left off.</p>", "Continue", {
    data: { psylens_stage: "welcome_back" },
  });
}

export function buildTimeline(ctx: ExperimentContext): JsPsychTimeline {
  const { study } = ctx.session;
  const pendingKeys = ctx.outbox.pendingKeys();
  const remaining = remainingTrials(ctx.session, pendingKeys);
  const timeline: TimelineNode[] = isResuming(ctx.session, pendingKeys)
    ? [welcomeBackTrial(), fullscreenTrial(study)]
    : [consentTrial(study), fullscreenTrial(study), instructionsTrial(study, ctx.events)];
  // A practice block is done where the participant has not yet passed it and its main trials
  // are still ahead (a block whose trials were answered is not asked for again).
  const firstLeft = remaining.length > 0 ? remaining[0].index : Infinity;
  const practiceBefore: Array<[number, TimelineNode]> = [];
  for (const { state, trials } of practiceBlocks(ctx.session)) {
    if (state.before < firstLeft && state.before !== 0) continue;
    if (!remaining.some((trial) => trial.index >= state.before)) continue;
    const node = practiceBlock(ctx, state, trials, state.block === 0);
    if (node) practiceBefore.push([Math.max(state.before, firstLeft), node]);
  }
  timeline.push(...mainBlock(ctx, remaining, practiceBefore));
  return timeline as JsPsychTimeline;
}
