/**
 * The whole timeline in jsPsych's data-only simulation, against a fake participant API that
 * scores answers: what is PUT where, practice looping, resume, breaks.
 */
import { simulateTimeline } from "@jspsych/test-utils";

import type { SessionStart, Study, Trial } from "./api";
import { EventLog } from "./events";
import { Outbox } from "./outbox";
import { MemoryStore } from "./outbox-store";
import {
  BlockScores,
  buildTimeline,
  choiceTrial,
  isResuming,
  isoTime,
  remainingTrials,
  responseBody,
  responseKey,
  type ExperimentContext,
} from "./timeline";

const STUDY: Study = {
  slug: "demo",
  title: "Demo",
  paradigm: "reference_choice",
  consent_html: "<p>Consent</p>",
  instructions_html: "<p>Instructions</p>",
  min_instruction_seconds: 15,
  min_window: { width: 100, height: 100 },
  fullscreen: true,
  question: "Which image also strongly activates the unit?",
  timing: { lockout_ms: 1500, feedback_delay_ms: 350, feedback_duration_ms: 1150 },
  feedback: true,
  show_counter: true,
  break_every: 2,
  image_size_px: 100,
  preload_ahead: 2,
};

function makeTrial(index: number, kind: Trial["kind"] = "reference_choice"): Trial {
  return {
    index,
    kind,
    block: 0,
    references: { left: [`/media/l${index}.png`], right: [`/media/r${index}.png`] },
    queries: [`/media/q${index}a.png`, `/media/q${index}b.png`],
    ...(kind === "occlusion_choice" ? { base: `/media/b${index}.png` } : {}),
  };
}

function makeSession(overrides: Partial<SessionStart["state"]> = {}): SessionStart {
  return {
    token: "tok",
    study: STUDY,
    practice: [makeTrial(0), makeTrial(1)],
    trials: [0, 1, 2, 3, 4].map((i) => makeTrial(i)),
    state: {
      next_trial_index: 0,
      correct_count: 0,
      n_trials: 5,
      practice_passed: false,
      practice_attempts: 0,
      completed: false,
      completion: null,
      ...overrides,
    },
  };
}

/** A fake API: practice answers are right except those listed as wrong for an attempt. */
function fakeServer(wrongPractice: Record<number, number[]> = {}, wrongMain: number[] = []) {
  const puts: string[] = [];
  const posts: Array<{ url: string; body: unknown }> = [];
  const fetchMock = async (url: RequestInfo | URL, init?: RequestInit) => {
    const path = String(url);
    if (init?.method === "POST") {
      posts.push({ url: path, body: JSON.parse(String(init.body)) });
      return new Response(null, { status: 204 });
    }
    puts.push(path);
    const practice = /\/practice\/(\d+)\/(\d+)$/.exec(path);
    if (practice) {
      const wrong = wrongPractice[Number(practice[1])] ?? [];
      const correct = !wrong.includes(Number(practice[2]));
      return Response.json(
        { feedback: { correct }, attempt: Number(practice[1]) },
        { status: 201 },
      );
    }
    const main = /\/responses\/(\d+)$/.exec(path);
    const correct = !wrongMain.includes(Number(main?.[1]));
    return Response.json({ feedback: { correct }, correct_count: 1 }, { status: 201 });
  };
  return { fetch: fetchMock as typeof fetch, puts, posts };
}

/** The PsyLens stages (consent, practice_intro, break, …) the run went through, in order. */
function stagesOf(getData: () => { values(): Array<Record<string, unknown>> }): unknown[] {
  return getData()
    .values()
    .map((d) => d.psylens_stage)
    .filter(Boolean);
}

async function run(session: SessionStart, server = fakeServer(), outbox?: Outbox) {
  const box = outbox ?? new Outbox({ store: new MemoryStore(), fetch: server.fetch });
  const events = new EventLog("/api/v1/sessions/tok/events", { fetch: server.fetch });
  const ctx: Omit<ExperimentContext, "jsPsych"> = {
    session,
    outbox: box,
    events,
    progress: { correctCount: 0 },
    imageLoader: async () => {},
  };
  const { JsPsych } = await import("jspsych");
  const jsPsych = new JsPsych({ show_progress_bar: true, auto_update_progress_bar: false });
  const result = await simulateTimeline(
    buildTimeline({ ...ctx, jsPsych }),
    "data-only",
    {},
    jsPsych,
  );
  await result.finished;
  await box.waitUntilEmpty();
  await events.flush();
  return { ...result, server, jsPsych };
}

describe("remainingTrials", () => {
  test("it starts at the server's next_trial_index", () => {
    const left = remainingTrials(makeSession({ next_trial_index: 3 }), []);

    expect(left.map((t) => t.index)).toEqual([3, 4]);
  });

  test("it skips trials whose answer still waits in the outbox", () => {
    const left = remainingTrials(makeSession({ next_trial_index: 2 }), [
      responseKey("tok", 2),
      responseKey("other", 3),
    ]);

    expect(left.map((t) => t.index)).toEqual([3, 4]);
  });
});

describe("choiceTrial", () => {
  test("it maps an occlusion trial to occlusion-choice with its base image", () => {
    const node = choiceTrial(STUDY, makeTrial(3, "occlusion_choice"));

    expect(node).toMatchObject({ base: "/media/b3.png", study_trial_index: 3, lockout_ms: 1500 });
    expect((node.type as { info: { name: string } }).info.name).toBe("occlusion-choice");
  });

  test("it maps a description trial to description-choice with its words and grids", () => {
    const node = choiceTrial(STUDY, {
      ...makeTrial(2, "description_choice"),
      description: "tench",
    });

    expect(node).toMatchObject({ description: "tench", study_trial_index: 2 });
    expect(node.references_left).toEqual(makeTrial(2).references.left);
    expect((node.type as { info: { name: string } }).info.name).toBe("description-choice");
  });

  test("it keeps the server's grid labels", () => {
    const node = choiceTrial(STUDY, { ...makeTrial(1), left_label: "Low", right_label: "High" });

    expect(node).toMatchObject({ left_label: "Low", right_label: "High" });
  });
});

describe("the timeline", () => {
  test("it runs consent, practice and every main trial, PUTting each answer once", async () => {
    const { server, getData } = await run(makeSession());

    expect(server.puts).toEqual([
      "/api/v1/sessions/tok/practice/1/0",
      "/api/v1/sessions/tok/practice/1/1",
      ...[0, 1, 2, 3, 4].map((i) => `/api/v1/sessions/tok/responses/${i}`),
    ]);
    const stages = stagesOf(getData);
    expect(stages).toEqual([
      "consent",
      "instructions",
      "practice_intro",
      "practice_summary",
      "break",
      "break",
    ]);
  });

  test("it repeats the practice until an attempt is all correct", async () => {
    const { server } = await run(makeSession(), fakeServer({ 1: [1], 2: [0] }));

    const practice = server.puts.filter((url) => url.includes("/practice/"));
    expect(practice).toEqual([
      "/api/v1/sessions/tok/practice/1/0",
      "/api/v1/sessions/tok/practice/1/1",
      "/api/v1/sessions/tok/practice/2/0",
      "/api/v1/sessions/tok/practice/2/1",
      "/api/v1/sessions/tok/practice/3/0",
      "/api/v1/sessions/tok/practice/3/1",
    ]);
  });

  test("it numbers practice attempts on from the server's count", async () => {
    const { server } = await run(makeSession({ practice_attempts: 2 }));

    expect(server.puts[0]).toBe("/api/v1/sessions/tok/practice/3/0");
  });

  test("a resumed session skips consent, instructions and a passed practice", async () => {
    const { server, getData } = await run(
      makeSession({ next_trial_index: 3, practice_passed: true, practice_attempts: 1 }),
    );

    expect(server.puts).toEqual([
      "/api/v1/sessions/tok/responses/3",
      "/api/v1/sessions/tok/responses/4",
    ]);
    const stages = stagesOf(getData);
    expect(stages).toEqual(["welcome_back", "break"]);
  });

  /** Two practice blocks (Borowski et al. 2021): trials 0–2 in block 0, 3–4 in block 1. */
  function blockedSession(overrides: Partial<SessionStart["state"]> = {}): SessionStart {
    const session = makeSession({
      practice_blocks: [
        { block: 0, before: 0, size: 1, attempts: 0, passed: false },
        { block: 1, before: 3, size: 2, attempts: 0, passed: false },
      ],
      ...overrides,
    });
    session.study = { ...STUDY, break_every: 0 };
    session.practice = [makeTrial(0), { ...makeTrial(1), block: 1 }, { ...makeTrial(2), block: 1 }];
    session.trials = session.trials.map((t) => ({ ...t, block: t.index < 3 ? 0 : 1 }));
    return session;
  }

  test("it runs each practice block just before the main trials that follow it", async () => {
    const { server, getData } = await run(blockedSession());

    expect(server.puts).toEqual([
      "/api/v1/sessions/tok/practice/1/0",
      ...[0, 1, 2].map((i) => `/api/v1/sessions/tok/responses/${i}`),
      "/api/v1/sessions/tok/practice/1/1",
      "/api/v1/sessions/tok/practice/1/2",
      ...[3, 4].map((i) => `/api/v1/sessions/tok/responses/${i}`),
    ]);
    const stages = stagesOf(getData);
    expect(stages).toEqual([
      "consent",
      "instructions",
      "practice_intro",
      "practice_summary",
      "practice_intro",
      "practice_summary",
    ]);
  });

  test("a block's practice loops on its own, counting its own attempts", async () => {
    const { server } = await run(
      blockedSession({
        practice_blocks: [
          { block: 0, before: 0, size: 1, attempts: 1, passed: true },
          { block: 1, before: 3, size: 2, attempts: 0, passed: false },
        ],
      }),
      fakeServer({ 1: [2] }),
    );

    expect(server.puts.filter((url) => url.includes("/practice/"))).toEqual([
      "/api/v1/sessions/tok/practice/1/1",
      "/api/v1/sessions/tok/practice/1/2",
      "/api/v1/sessions/tok/practice/2/1",
      "/api/v1/sessions/tok/practice/2/2",
    ]);
  });

  test("a session resumed after a block's main trials starts with the next block's practice", async () => {
    const { server, getData } = await run(
      blockedSession({
        next_trial_index: 3,
        practice_attempts: 1,
        practice_blocks: [
          { block: 0, before: 0, size: 1, attempts: 1, passed: true },
          { block: 1, before: 3, size: 2, attempts: 0, passed: false },
        ],
      }),
    );

    expect(server.puts).toEqual([
      "/api/v1/sessions/tok/practice/1/1",
      "/api/v1/sessions/tok/practice/1/2",
      "/api/v1/sessions/tok/responses/3",
      "/api/v1/sessions/tok/responses/4",
    ]);
    const stages = stagesOf(getData);
    expect(stages).toEqual(["welcome_back", "practice_intro", "practice_summary"]);
  });

  test("there is a break between two blocks that no practice separates", async () => {
    const session = blockedSession({
      practice_blocks: [{ block: 0, before: 0, size: 1, attempts: 1, passed: true }],
    });
    session.practice = [makeTrial(0)];
    const { getData } = await run(session);

    const stages = stagesOf(getData);
    expect(stages).toEqual(["consent", "instructions", "break"]);
    const breaks = getData().filter({ psylens_stage: "break" }).values();
    expect(String(breaks[0].stimulus)).toContain("3 of 5");
  });

  test("with block feedback, the break after a block says how many of its trials were right", async () => {
    const session = blockedSession({
      practice_blocks: [{ block: 0, before: 0, size: 1, attempts: 1, passed: true }],
    });
    session.study = { ...session.study, block_feedback: true };
    const { getData } = await run(session, fakeServer({}, [1]));

    const breaks = getData().filter({ psylens_stage: "break" }).values();
    expect(breaks).toHaveLength(1);
    expect(String(breaks[0].stimulus)).toContain("You got 2 out of 3 trials correct.");
  });

  test("after a reload, the block's score adds the answers stored before it", async () => {
    const session = blockedSession({
      next_trial_index: 2,
      practice_blocks: [{ block: 0, before: 0, size: 1, attempts: 1, passed: true }],
      block_scores: [{ block: 0, answered: 2, correct: 0 }],
    });
    session.study = { ...session.study, block_feedback: true };
    const { getData } = await run(session);

    const breaks = getData().filter({ psylens_stage: "break" }).values();
    expect(String(breaks[0].stimulus)).toContain("You got 1 out of 3 trials correct.");
  });

  test("a block score does not wait for ever on an answer still being saved", async () => {
    const scores = new BlockScores(blockedSession(), 20);
    scores.record(0, Promise.resolve({ correct: true }));
    scores.record(0, new Promise(() => {})); // offline: never acknowledged in time

    const text = await scores.score(0);
    expect(text).toContain("You got 1 out of the 1 trials scored so far correct (3 in the block");
  });

  test("it records the instructions' reading time as an event", async () => {
    const { server } = await run(makeSession());

    const events = server.posts.flatMap((p) => (p.body as { events: unknown[] }).events);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: "instructions_read",
        detail: { seconds: expect.any(Number) },
      }),
    );
  });

  test("it sends the contract's response body", async () => {
    const bodies: unknown[] = [];
    const server = fakeServer();
    const spy: typeof fetch = async (url, init) => {
      if (String(url).endsWith("/responses/4")) bodies.push(JSON.parse(String(init?.body)));
      return server.fetch(url, init);
    };
    await run(makeSession({ next_trial_index: 4, practice_passed: true }), {
      ...server,
      fetch: spy,
    });

    expect(bodies[0]).toEqual({
      choice: expect.any(Number),
      confidence: expect.any(Number),
      rt_ms: expect.any(Number),
      client_started_at: expect.any(String),
      client_answered_at: expect.any(String),
      raw: expect.objectContaining({ study_trial_index: 4 }),
    });
  });

  test("an empty consent or instructions text shows no page", async () => {
    const session = makeSession({ practice_passed: true });
    session.practice = [];
    session.study = { ...STUDY, consent_html: "", instructions_html: "  \n" };
    const { getData, server } = await run(session);

    expect(stagesOf(getData)).toEqual(["break", "break"]);
    const events = server.posts.flatMap((p) => (p.body as { events: unknown[] }).events);
    expect(events).toEqual([]);
  });

  test("it reports through the outbox the feedback a trial showed", async () => {
    const sent: Array<[string, string, unknown]> = [];
    const outbox = {
      pendingKeys: () => [],
      send: async (key: string, url: string, body: unknown) => {
        sent.push([key, url, body]);
        return {};
      },
    };
    const { JsPsych } = await import("jspsych");
    const session = makeSession();
    const timeline = buildTimeline({
      jsPsych: new JsPsych(),
      session,
      outbox,
      events: { record: () => undefined },
      progress: { correctCount: 0 },
    });
    const nodes = timeline as Array<Record<string, unknown>>;
    const main = nodes.find((node) => node.study_trial_index === 2)!;
    (main.on_feedback_shown as (correct: boolean) => void)(true);
    const practice = nodes.find((node) => typeof node.loop_function === "function")!;
    const round = (practice.timeline as Array<Record<string, unknown>>).filter(
      (node) => node.practice === true,
    );
    (round[1].on_feedback_shown as (correct: boolean) => void)(false);

    expect(sent).toEqual([
      [
        "tok/responses/2/shown",
        "/api/v1/sessions/tok/responses/2/shown",
        { feedback_shown: true, correct: true },
      ],
      [
        "tok/practice/0/1/shown",
        "/api/v1/sessions/tok/practice/0/1/shown",
        { feedback_shown: true, correct: false },
      ],
    ]);
  });

  test("practice trials are labelled as practice, with their round", async () => {
    const { JsPsych } = await import("jspsych");
    const timeline = buildTimeline({
      jsPsych: new JsPsych(),
      session: makeSession({ practice_attempts: 1 }),
      outbox: { pendingKeys: () => [], send: async () => ({}) },
      events: { record: () => undefined },
      progress: { correctCount: 0 },
    });
    const practice = (timeline as Array<Record<string, unknown>>).find(
      (node) => typeof node.loop_function === "function",
    )!;
    const nodes = practice.timeline as Array<Record<string, unknown>>;
    (nodes[0].func as () => void)(); // a new round: the second
    const labels = nodes
      .filter((node) => node.practice === true)
      .map((node) => (node.label as () => string)());

    expect(labels).toEqual(["Practice trial 1 of 2 (round 2)", "Practice trial 2 of 2 (round 2)"]);
  });

  test("it moves the progress bar to the end", async () => {
    const { jsPsych } = await run(makeSession());

    expect(jsPsych.progressBar?.progress).toBe(1);
  });
});

describe("isResuming", () => {
  test("it counts an unsent answer of this session as progress", () => {
    expect(isResuming(makeSession(), [])).toBe(false);
    expect(isResuming(makeSession(), ["tok/responses/0"])).toBe(true);
    expect(isResuming(makeSession(), ["other/responses/0"])).toBe(false);
  });
});

describe("responseBody", () => {
  const data = { client_started_at: "2026-11-22T10:00:00.000Z", study_trial_index: 3 };

  test("it sends the plugin's times as ISO 8601", () => {
    const body = responseBody(1, 3, 1834.5, {
      ...data,
      client_answered_at: "2026-11-22T10:00:01.834Z",
    });

    expect(body).toEqual({
      choice: 1,
      confidence: 3,
      rt_ms: 1834.5,
      client_started_at: "2026-11-22T10:00:00.000Z",
      client_answered_at: "2026-11-22T10:00:01.834Z",
      raw: expect.objectContaining({ study_trial_index: 3 }),
    });
  });

  test.each([undefined, null, "", "undefined", "yesterday", 12])(
    "it never sends %j as a time: the start is left out, the answer time is now",
    (missing) => {
      const before = Date.now();
      const body = responseBody(0, 2, 900, {
        client_started_at: missing,
        client_answered_at: missing,
      });
      const sent = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;

      expect(sent).not.toHaveProperty("client_started_at");
      expect(Date.parse(String(sent.client_answered_at))).toBeGreaterThanOrEqual(before - 1);
      expect(String(sent.client_answered_at)).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    },
  );
});

describe("isoTime", () => {
  test("it normalises times and refuses what is not one", () => {
    expect(isoTime(new Date(Date.UTC(2026, 10, 22, 10)))).toBe("2026-11-22T10:00:00.000Z");
    expect(isoTime("2026-11-22T11:00:00+01:00")).toBe("2026-11-22T10:00:00.000Z");
    expect(isoTime(new Date(Number.NaN))).toBeUndefined();
    expect(isoTime(new Date(8.64e15))).toBeUndefined();
  });
});
